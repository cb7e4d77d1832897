package ich.nn.model;

import ich.nn.Tensor;

import java.util.SplittableRandom;

/** The random masks of dropout and drop-path: 0 with probability p, else 1 / (1 - p), as PyTorch and timm scale. */
final class Masks {
    private Masks() {
    }

    static Tensor bernoulli(StepContext ctx, String stream, double p, int... shape) {
        if (!(p > 0 && p < 1)) throw new IllegalArgumentException("drop probability must be in (0, 1): " + p);
        SplittableRandom rng = ctx.random(stream);
        double keep = 1 - p;
        float scale = (float) (1 / keep);
        long size = 1;
        for (int d : shape) size *= d;
        float[] mask = new float[Math.toIntExact(size)];
        for (int i = 0; i < mask.length; i++) mask[i] = rng.nextDouble() < keep ? scale : 0f;
        return ctx.upload(mask, shape);
    }
}
