package ich.synth;

import ich.labels.Subtype;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The lesion plans against their targets, on many studies (plans only: no pixels). The rendered labels follow the
 * plans except where a lesion's end shows too little to count ({@link SynthDatasetTest} bounds that at 2 % of
 * slices; in practice a few subarachnoid slice ends), so these are the rates of the data sets up to that.
 */
class LesionPlannerTest {
    private static final Path NOWHERE = Path.of("unused");

    /** Per-image rates of the plans, and each rate's standard error treating studies as the sampled units. */
    record Rates(double[] rate, double[] standardError, double subtypesPerPositive, double meanRun) {}

    static Rates rates(List<SynthStudy> studies) {
        int n = studies.size();
        double[] sum = new double[Subtype.COUNT], sumSq = new double[Subtype.COUNT];
        long positives = 0, subtypes = 0, runs = 0, runSlices = 0;
        long slices = 0;
        for (SynthStudy s : studies) {
            double[] f = new double[Subtype.COUNT];
            boolean inRun = false;
            for (int k = 0; k < s.slices(); k++) {
                int bits = s.plannedLabels(k);
                for (int t = 0; t < Subtype.COUNT; t++) f[t] += (bits >>> t & 1) / (double) s.slices();
                if (bits != 0) {
                    positives++;
                    subtypes += Integer.bitCount(bits) - 1;
                    runSlices++;
                    if (!inRun) runs++;
                }
                inRun = bits != 0;
            }
            slices += s.slices();
            for (int t = 0; t < Subtype.COUNT; t++) {
                sum[t] += f[t];
                sumSq[t] += f[t] * f[t];
            }
        }
        double[] rate = new double[Subtype.COUNT], se = new double[Subtype.COUNT];
        for (int t = 0; t < Subtype.COUNT; t++) {
            rate[t] = sum[t] / n;
            se[t] = Math.sqrt((sumSq[t] / n - rate[t] * rate[t]) / (n - 1));
        }
        assertEquals(slices, (long) n * studies.getFirst().slices());
        return new Rates(rate, se, subtypes / (double) positives, runSlices / (double) runs);
    }

    /**
     * 20,000 studies of 30 slices (600,000 images, about RSNA stage 1's size) against the RSNA rates. Tolerance: 4
     * standard errors of the sample's rate (studies are the units, positives cluster in them) doubled in variance
     * for the calibration, itself an estimate from another 20,000 simulated studies: sqrt(2) * 4 SE. About 1 %
     * relative for any, 10 % for the rare epidural.
     */
    @Test
    void rsnaRatesOnTwentyThousandStudies() {
        Prevalence target = Prevalence.RSNA_STAGE_1;
        Rates r = rates(SynthDataset.plan(SynthConfig.of(NOWHERE, 20_000, 30, 7)));
        for (Subtype t : Subtype.values()) {
            double tolerance = Math.sqrt(2) * 4 * r.standardError()[t.ordinal()];
            assertEquals(target.rate(t), r.rate()[t.ordinal()], tolerance, t.csvName() + " (SE " + r.standardError()[t.ordinal()] + ")");
        }
        // any is the OR of the subtypes, so a positive slice shows sum/any subtypes: RSNA's 1.38.
        double rsna = (target.rates()[1] + target.rates()[2] + target.rates()[3] + target.rates()[4] + target.rates()[5]) / target.rates()[0];
        assertEquals(rsna, r.subtypesPerPositive(), 0.05 * rsna, "subtypes per positive slice");
        assertTrue(r.meanRun() > 5, "positive slices come in runs across neighbouring slices: " + r.meanRun());
    }

    /** The calibration holds for short and long studies too, where anatomy cuts the windows differently. */
    @ParameterizedTest
    @ValueSource(ints = {8, 60})
    void otherStudyLengths(int slices) {
        Rates r = rates(SynthDataset.plan(SynthConfig.of(NOWHERE, 8_000, slices, 11)));
        for (Subtype t : Subtype.values()) {
            double tolerance = Math.sqrt(2) * 4 * r.standardError()[t.ordinal()];
            assertEquals(Prevalence.RSNA_STAGE_1.rate(t), r.rate()[t.ordinal()], tolerance, slices + " slices: " + t.csvName());
        }
    }

    @Test
    void otherPrevalences() {
        Prevalence p = Prevalence.RSNA_STAGE_1.withAnyRate(0.4).with(Subtype.EPIDURAL, 0);
        List<SynthStudy> studies = SynthDataset.plan(SynthConfig.of(NOWHERE, 5_000, 30, 3).withPrevalence(p));
        Rates r = rates(studies);
        assertEquals(0.4, r.rate()[0], 4 * Math.sqrt(2) * r.standardError()[0]);
        assertEquals(p.rate(Subtype.SUBDURAL), r.rate()[Subtype.SUBDURAL.ordinal()], 4 * Math.sqrt(2) * r.standardError()[Subtype.SUBDURAL.ordinal()]);
        assertTrue(studies.stream().flatMap(s -> s.lesions().stream()).noneMatch(l -> l.type() == Subtype.EPIDURAL), "epidural rate 0");

        Prevalence none = new Prevalence(new double[Subtype.COUNT]);
        assertTrue(SynthDataset.plan(SynthConfig.of(NOWHERE, 500, 30, 3).withPrevalence(none)).stream().allMatch(s -> s.lesions().isEmpty()));
    }

    @Test
    void knobsAreProbabilities() {
        LesionPlanner.Knobs k = LesionPlanner.calibrate(30, Prevalence.RSNA_STAGE_1);
        double sum = 0;
        for (int s = 1; s < Subtype.COUNT; s++) {
            sum += k.dominant()[s];
            assertTrue(k.dominant()[s] >= 0 && k.secondary()[s] >= 0 && k.secondary()[s] <= 1, Subtype.of(s).csvName());
        }
        assertEquals(1, sum, 1e-9);
        assertTrue(k.positive() > 0 && k.positive() <= 1 && k.window() > 0 && k.window() <= 1);
        assertSame(k, LesionPlanner.calibrate(30, Prevalence.RSNA_STAGE_1), "cached");
    }

    @Test
    void lesionsLieWhereTheirAnatomyIs() {
        for (SynthStudy s : SynthDataset.plan(SynthConfig.of(NOWHERE, 2_000, 30, 5))) {
            for (Lesion l : s.lesions()) {
                assertTrue(l.first() >= 0 && l.last() < s.slices() && l.first() <= l.last());
                assertTrue(l.bloodHu() >= 50 && l.bloodHu() <= 90, "acute blood: " + l);
                double lo = s.acquisition().centreZ(l.first()) / s.anatomy().height(), hi = s.acquisition().centreZ(l.last()) / s.anatomy().height();
                assertTrue(lo >= 0.13 && hi <= 0.91, l + " at " + lo + ".." + hi + " of the head's height");
                if (l instanceof Lesion.Ventricular) assertTrue(lo >= 0.45 && hi <= 0.63, "intraventricular at the ventricles: " + lo + ".." + hi);
            }
        }
    }

    @Test
    void prevalenceRejectsImpossibleRates() {
        assertThrows(IllegalArgumentException.class, () -> Prevalence.RSNA_STAGE_1.with(Subtype.SUBDURAL, 0.2), "subtype above any");
        assertThrows(IllegalArgumentException.class, () -> Prevalence.RSNA_STAGE_1.with(Subtype.ANY, 0.3), "any above the sum of subtypes");
        assertThrows(IllegalArgumentException.class, () -> Prevalence.RSNA_STAGE_1.withAnyRate(1.2));
        assertThrows(IllegalArgumentException.class, () -> new Prevalence(new double[5]));
        Prevalence half = Prevalence.RSNA_STAGE_1.withAnyRate(0.072);
        assertEquals(0.0315, half.rate(Subtype.SUBDURAL), 1e-12);
    }
}
