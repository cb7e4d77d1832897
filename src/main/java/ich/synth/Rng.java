package ich.synth;

/**
 * The generator's random numbers: SplitMix64 (Steele, Lea, Flood 2014), written out here so that a seed gives the
 * same data set on every JDK (the JDK's generators promise no fixed sequence across versions). Gaussians use
 * Box-Muller with {@link StrictMath}, whose results are fixed across platforms. Not thread-safe: each study and
 * each slice derives its own generator from the seed with {@link #derive}.
 */
public final class Rng {
    private static final long GOLDEN = 0x9E3779B97F4A7C15L;
    private long state;

    public Rng(long seed) { this.state = seed; }

    /** A generator for one part of the data set: the seed mixed with the part's names and numbers. */
    public static Rng derive(long seed, long... parts) { return new Rng(hash(seed, parts)); }

    public static long hash(long seed, long... parts) {
        long h = mix(seed ^ 0x243F6A8885A308D3L);
        for (long p : parts) h = mix(h ^ mix(p + GOLDEN));
        return h;
    }

    /** SplitMix64's finaliser: a bijective mix of 64 bits. */
    public static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public long nextLong() { return mix(state += GOLDEN); }

    /** Uniform in [0, 1), 53 bits. */
    public double nextDouble() { return (nextLong() >>> 11) * 0x1.0p-53; }

    /** Uniform in [from, to). */
    public double uniform(double from, double to) { return from + (to - from) * nextDouble(); }

    /** Uniform in [0, bound), without modulo bias. */
    public int nextInt(int bound) {
        if (bound <= 0) throw new IllegalArgumentException("bound " + bound);
        long threshold = Long.remainderUnsigned(-bound & 0xFFFFFFFFL, bound);
        while (true) {
            long r = nextLong() >>> 32;
            long m = r * bound;
            if ((m & 0xFFFFFFFFL) >= threshold) return (int) (m >>> 32);
        }
    }

    /** Uniform in [from, to] (both included). */
    public int between(int from, int to) { return from + nextInt(to - from + 1); }

    public boolean chance(double p) { return nextDouble() < p; }

    /** Standard normal (Box-Muller; one of the pair is dropped, which costs nothing that matters here). */
    public double gaussian() {
        double u = 1 - nextDouble(), v = nextDouble();
        return StrictMath.sqrt(-2 * StrictMath.log(u)) * StrictMath.cos(2 * Math.PI * v);
    }

    /** Index drawn with probability proportional to {@code weights[i]}. */
    public int pick(double... weights) {
        double total = 0;
        for (double w : weights) total += w;
        double x = nextDouble() * total;
        for (int i = 0; i < weights.length; i++) {
            x -= weights[i];
            if (x < 0) return i;
        }
        return weights.length - 1;
    }

    /** Rounds up with probability equal to the fraction, so that the mean is {@code x}. */
    public int stochasticRound(double x) {
        double f = Math.floor(x);
        return (int) f + (nextDouble() < x - f ? 1 : 0);
    }
}
