package ich.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.*;

/** {@code ich evaluate} as a user runs it. */
class EvaluateCommandTest {
    private static final List<String> SUBTYPES = List.of("any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural");

    @TempDir
    Path dir;

    /** Rows {@code ID_<image>_<subtype>,<value>} in the given subtype order per image. */
    private Path csv(String name, String[] images, double[][] values, List<String> order) throws Exception {
        StringBuilder sb = new StringBuilder("ID,Label\n");
        for (int i = 0; i < images.length; i++) {
            for (String s : order) {
                double v = values[i][SUBTYPES.indexOf(s)];
                sb.append("ID_").append(images[i]).append('_').append(s).append(',')
                        .append(v == Math.rint(v) ? String.valueOf((int) v) : String.valueOf(v)).append('\n');
            }
        }
        Path f = dir.resolve(name);
        Files.writeString(f, sb);
        return f;
    }

    private static final String[] IMAGES = {"a1", "b2", "c3", "d4"};
    private static final double[][] LABELS = {{1, 0, 1, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 1, 1}, {0, 0, 0, 0, 0, 0}};
    private static final double[][] PREDICTED = {{0.9, 0.1, 0.7, 0.2, 0.1, 0.2}, {0.2, 0.05, 0.1, 0.1, 0.1, 0.1},
            {0.6, 0.02, 0.3, 0.1, 0.4, 0.8}, {0.7, 0.01, 0.2, 0.05, 0.3, 0.1}};

    private static double ll(double p, double y) {
        return y == 1 ? -Math.log(p) : -Math.log(1 - p);
    }

    /** The competition's formula, per image over 7, averaged. */
    private static double weighted(double[][] p, double[][] y) {
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            double image = 0;
            for (int l = 0; l < 6; l++) image += (l == 0 ? 2 : 1) * ll(p[i][l], y[i][l]);
            sum += image / 7;
        }
        return sum / p.length;
    }

    @Test
    void printsTheWeightedLogLossPerSubtypeMetricsAndThePrior() throws Exception {
        Path labels = csv("labels.csv", IMAGES, LABELS, List.of("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"));
        // The submission lists the images in another order, subtypes in Subtype order.
        String[] shuffled = {IMAGES[2], IMAGES[0], IMAGES[3], IMAGES[1]};
        double[][] shuffledP = {PREDICTED[2], PREDICTED[0], PREDICTED[3], PREDICTED[1]};
        Path submission = csv("submission.csv", shuffled, shuffledP, SUBTYPES);

        CliTest.Run r = CliTest.run("evaluate", "--predictions", submission.toString(), "--labels", labels.toString());
        assertEquals(0, r.exit(), r.err());
        double expected = weighted(PREDICTED, LABELS);
        assertTrue(r.out().contains(String.format(Locale.ROOT, "weighted log loss  %.6f%n", expected)), r.out());
        assertTrue(r.out().contains("images             4"), r.out());
        // any: positives a1 (0.9), c3 (0.6); negatives b2 (0.2), d4 (0.7): pairs won 0.9>0.2, 0.9>0.7, 0.6>0.2 -> 3/4
        double anyLoss = (ll(0.9, 1) + ll(0.2, 0) + ll(0.6, 1) + ll(0.7, 0)) / 4;
        assertTrue(r.out().contains(String.format(Locale.ROOT, "any               %9.6f  0.7500    0.7500     0.5000   0.5000", anyLoss)), r.out());
        assertTrue(r.out().contains(String.format(Locale.ROOT, "epidural          %9.6f     n/a", (ll(0.9, 0) * 0 + ll(0.1, 0) + ll(0.05, 0) + ll(0.02, 0) + ll(0.01, 0)) / 4)), r.out());
        assertTrue(r.out().contains("AUC n/a: the labels hold only one class"), r.out());
        // The prior predicts the evaluated labels' own prevalence.
        double[] prevalence = {0.5, 0, 0.25, 0, 0.25, 0.25};
        double[][] prior = {prevalence, prevalence, prevalence, prevalence};
        double priorLoss = 0;
        for (int i = 0; i < 4; i++) {
            double image = 0;
            for (int l = 0; l < 6; l++) {
                double q = Math.min(Math.max(prior[i][l], 1e-15), 1 - 1e-15);
                image += (l == 0 ? 2 : 1) * ll(q, LABELS[i][l]);
            }
            priorLoss += image / 7 / 4;
        }
        assertTrue(r.out().contains(String.format(Locale.ROOT, "prior baseline     %.6f%n", priorLoss)), r.out());
        assertTrue(r.out().contains("the evaluated labels' own prevalence"), r.out());
    }

    @Test
    void priorFromTrainingLabelsAndJson() throws Exception {
        Path labels = csv("labels.csv", IMAGES, LABELS, SUBTYPES);
        Path submission = csv("submission.csv", IMAGES, PREDICTED, SUBTYPES);
        // Training labels: 1 of 5 images positive for any and subdural, none for the rest.
        double[][] train = new double[5][6];
        train[0][0] = 1;
        train[0][5] = 1;
        Path trainCsv = csv("train.csv", new String[]{"t1", "t2", "t3", "t4", "t5"}, train, SUBTYPES);

        CliTest.Run r = CliTest.run("evaluate", "--predictions", submission.toString(), "--labels", labels.toString(),
                "--prior-from", trainCsv.toString(), "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals(4, j.get("images").asInt());
        assertEquals(weighted(PREDICTED, LABELS), j.get("weightedLogLoss").asDouble(), 1e-7);
        assertEquals(0.75, j.get("subtypes").get("any").get("auc").asDouble(), 0);
        assertTrue(j.get("subtypes").get("epidural").get("auc").isNull());
        assertEquals(0.5, j.get("subtypes").get("any").get("prevalence").asDouble(), 0);
        JsonNode prior = j.get("prior");
        assertEquals(trainCsv.toString(), prior.get("source").asText());
        assertFalse(prior.get("fromEvaluatedLabels").asBoolean());
        assertEquals(0.2, prior.get("predicted").get("any").asDouble(), 0);
        assertEquals(0.0, prior.get("predicted").get("epidural").asDouble(), 0);
        assertEquals(0.5, prior.get("subtypes").get("any").get("prevalence").asDouble(), 0, "the evaluated labels'");
        double pAny = 0.2;
        double expectedAny = (2 * ll(pAny, 1) + 2 * ll(pAny, 0)) / 4;
        assertEquals(expectedAny, prior.get("subtypes").get("any").get("logLoss").asDouble(), 1e-12);
        // intraparenchymal: training prevalence 0 clipped to 1e-15, one positive in the labels costs 34.5.
        assertEquals((-Math.log(1e-15) + 3 * -Math.log1p(-1e-15)) / 4, prior.get("subtypes").get("intraparenchymal").get("logLoss").asDouble(), 1e-9);

        CliTest.Run text = CliTest.run("evaluate", "--predictions", submission.toString(), "--labels", labels.toString(),
                "--prior-from", trainCsv.toString());
        assertTrue(text.out().contains("prior: every image predicted with the prevalence of " + trainCsv + " (5 images)"), text.out());
        assertTrue(text.out().contains(String.format(Locale.ROOT, "subdural          %9.6f %7s %9.4f %10.4f %8.4f ",
                (ll(0.2, 0) + ll(0.1, 0) + ll(0.8, 1) + ll(0.1, 0)) / 4, "1.0000", 1.0, 0.25, 0.2)), text.out());
    }

    @Test
    void imagesMissingFromEitherSideAreListedAndCounted() throws Exception {
        String[] many = new String[15];
        double[][] values = new double[15][6];
        for (int i = 0; i < many.length; i++) many[i] = "L" + i;
        Path labels = csv("labels.csv", many, values, SUBTYPES);
        String[] predicted = {"L0", "L1", "X1", "X2"};
        double[][] pv = new double[4][6];
        for (double[] row : pv) java.util.Arrays.fill(row, 0.5);
        Path submission = csv("submission.csv", predicted, pv, SUBTYPES);
        CliTest.Run r = CliTest.run("evaluate", "--predictions", submission.toString(), "--labels", labels.toString());
        assertEquals(1, r.exit(), r.out());
        assertTrue(r.err().contains("13 of 15 labelled image(s) have no predictions: ID_L2, ID_L3, ID_L4, ID_L5, ID_L6, ID_L7, ID_L8, ID_L9, ID_L10, ID_L11 and 3 more"), r.err());
        assertTrue(r.err().contains("2 of 4 predicted image(s) have no labels: ID_X1, ID_X2"), r.err());
        assertEquals("", r.out());
    }

    @Test
    void unreadableAndMalformedInputs() throws Exception {
        Path labels = csv("labels.csv", IMAGES, LABELS, SUBTYPES);
        CliTest.Run r = CliTest.run("evaluate", "--predictions", dir.resolve("none.csv").toString(), "--labels", labels.toString());
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("none.csv is not a file"), r.err());

        Path bad = dir.resolve("bad.csv");
        Files.writeString(bad, "ID,Label\nID_a1_any,1.5\n");
        r = CliTest.run("evaluate", "--predictions", bad.toString(), "--labels", labels.toString());
        assertEquals(1, r.exit());
        assertTrue(r.err().contains("bad.csv") && r.err().contains("line 2"), r.err());

        r = CliTest.run("evaluate", "--labels", labels.toString());
        assertEquals(2, r.exit(), "picocli usage error");
        assertTrue(r.err().contains("--predictions"), r.err());
    }
}
