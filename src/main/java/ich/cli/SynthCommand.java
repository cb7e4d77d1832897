package ich.cli;

import ich.labels.Subtype;
import ich.synth.Prevalence;
import ich.synth.SynthConfig;
import ich.synth.SynthDataset;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "synth", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Write a synthetic head-CT data set in the RSNA layout: DIR/images/ID_<9 hex>.dcm, "
                + "DIR/stage_1_train.csv and, for the held-out studies, DIR/stage_1_test_labels.csv and "
                + "DIR/stage_1_sample_submission.csv.",
                "Heads vary in size, shape, turn, tilt, atrophy and ventricles; hemorrhages of the five subtypes look "
                        + "like their kind and span neighbouring slices; encodings, syntaxes and windows vary as in the RSNA "
                        + "data. The same seed gives the same files, byte for byte. Prints the label counts."})
final class SynthCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output folder (created).")
    Path out;

    @Option(names = "--studies", required = true, paramLabel = "N", description = "Studies (one series each).")
    int studies;

    @Option(names = "--slices-per-study", required = true, paramLabel = "M", description = "Slices per study, about 5 mm apart.")
    int slices;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Random seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--positive-rate", paramLabel = "RATE",
            description = {"Share of images with any hemorrhage. Default: RSNA stage 1, 0.144. The subtype rates scale with it, "
                    + "keeping RSNA's mix (epidural 0.0041, intraparenchymal 0.0483, intraventricular 0.0352, "
                    + "subarachnoid 0.0476, subdural 0.0630 at 0.144)."})
    Double positiveRate;

    @Option(names = "--rate", paramLabel = "SUBTYPE=RATE",
            description = {"Share of images with one subtype, after --positive-rate scaling, e.g. --rate epidural=0.01; "
                    + "repeatable. Each subtype must stay at most the any rate, and any at most their sum."})
    Map<String, Double> rates = new LinkedHashMap<>();

    @Option(names = "--test-fraction", defaultValue = "0.1", paramLabel = "F",
            description = "Share of studies held out, whole patients (default ${DEFAULT-VALUE}; 0: no test files).")
    double testFraction;

    @Option(names = "--size", defaultValue = "512", paramLabel = "PX", description = "Rows and columns (default ${DEFAULT-VALUE}).")
    int size;

    @Option(names = "--threads", paramLabel = "T", description = "Studies rendered at once (default: all cores).")
    Integer threads;

    @Option(names = "--overwrite", description = "Delete the .dcm files of an earlier run in DIR/images first.")
    boolean overwrite;

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        SynthConfig config;
        try {
            Prevalence p = Prevalence.RSNA_STAGE_1;
            if (positiveRate != null) p = p.withAnyRate(positiveRate);
            for (Map.Entry<String, Double> e : rates.entrySet()) {
                Subtype s = Subtype.fromCsvName(e.getKey());
                if (s == null) throw new IllegalArgumentException("--rate: unknown subtype " + e.getKey() + ", expected one of "
                        + String.join(", ", Subtype.csvNames()));
                p = p.with(s, e.getValue());
            }
            config = new SynthConfig(out, studies, slices, seed, size, testFraction, p,
                    threads != null ? threads : Runtime.getRuntime().availableProcessors());
        } catch (IllegalArgumentException e) {
            err.println("ich synth: " + e.getMessage());
            err.flush();
            return 2;
        }
        try {
            SynthDataset.Summary summary = SynthDataset.generate(config, overwrite);
            stdout.print(summary.text());
            stdout.flush();
            return 0;
        } catch (IllegalStateException e) {
            err.println("ich synth: " + e.getMessage());
            err.flush();
            return 2;
        } catch (IOException e) {
            err.println("ich synth: " + e);
            err.flush();
            return 1;
        }
    }
}
