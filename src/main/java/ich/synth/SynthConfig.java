package ich.synth;

import java.nio.file.Path;

/**
 * What to generate.
 *
 * @param out            the folder: images/ and the label files go there
 * @param studies        number of studies (one series each)
 * @param slices         slices per study
 * @param seed           the same seed gives the same files, byte for byte
 * @param size           rows and columns of every slice
 * @param testFraction   share of the studies held out (whole patients), 0 for none
 * @param prevalence     target label rates per image
 * @param threads        studies rendered at once
 */
public record SynthConfig(Path out, int studies, int slices, long seed, int size, double testFraction, Prevalence prevalence,
                          int threads) {
    public SynthConfig {
        if (studies < 1) throw new IllegalArgumentException("--studies must be at least 1, not " + studies);
        if (slices < 1 || slices > 1000) throw new IllegalArgumentException("--slices-per-study must be within 1..1000, not " + slices);
        if (size < 64 || size > 2048) throw new IllegalArgumentException("--size must be within 64..2048, not " + size);
        if (!(testFraction >= 0 && testFraction < 1)) throw new IllegalArgumentException("--test-fraction must be within [0, 1), not " + testFraction);
        if (threads < 1) throw new IllegalArgumentException("threads must be at least 1");
    }

    public static SynthConfig of(Path out, int studies, int slices, long seed) {
        return new SynthConfig(out, studies, slices, seed, 512, 0.1, Prevalence.RSNA_STAGE_1, Runtime.getRuntime().availableProcessors());
    }

    public SynthConfig withStudies(int n) { return new SynthConfig(out, n, slices, seed, size, testFraction, prevalence, threads); }

    public SynthConfig withSlices(int m) { return new SynthConfig(out, studies, m, seed, size, testFraction, prevalence, threads); }

    public SynthConfig withSeed(long s) { return new SynthConfig(out, studies, slices, s, size, testFraction, prevalence, threads); }

    public SynthConfig withSize(int s) { return new SynthConfig(out, studies, slices, seed, s, testFraction, prevalence, threads); }

    public SynthConfig withTestFraction(double f) { return new SynthConfig(out, studies, slices, seed, size, f, prevalence, threads); }

    public SynthConfig withPrevalence(Prevalence p) { return new SynthConfig(out, studies, slices, seed, size, testFraction, p, threads); }

    public SynthConfig withThreads(int t) { return new SynthConfig(out, studies, slices, seed, size, testFraction, prevalence, t); }

    public SynthConfig withOut(Path o) { return new SynthConfig(o, studies, slices, seed, size, testFraction, prevalence, threads); }
}
