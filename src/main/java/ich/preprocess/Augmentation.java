package ich.preprocess;

import java.util.SplittableRandom;

/**
 * Where each sample is cut from and whether it is mirrored. The image is (notionally) resized to
 * {@code resize x resize}; then a crop of {@code crop x crop} output pixels is taken: at random for
 * training (area fraction in [minScale, maxScale] of the resized image, aspect ratio log-uniform in
 * [minRatio, maxRatio], integer offsets, as torchvision's RandomResizedCrop), or in the centre for
 * evaluation. Resize-then-crop is expressed as one crop box in source pixels and done as a single bilinear
 * resampling; for integer offsets and a pure crop this equals resizing then cropping.
 *
 * <p>The random draws for a sample come from {@link #random(long, int, long)}: a stream derived from
 * (seed, epoch, sample key), so a run repeats exactly and the GPU path can use the same boxes.
 */
public record Augmentation(int resize, int crop, boolean randomCrop, double minScale, double maxScale,
                           double minRatio, double maxRatio, double flipProbability) {

    public Augmentation {
        if (resize < 1 || crop < 1 || crop > resize) throw new IllegalArgumentException("need 1 <= crop <= resize, got crop " + crop + ", resize " + resize);
        if (!(0 < minScale && minScale <= maxScale && maxScale <= 1)) throw new IllegalArgumentException("scale range must be within (0, 1]");
        if (!(0 < minRatio && minRatio <= maxRatio)) throw new IllegalArgumentException("aspect ratio range must be positive");
        if (!(flipProbability >= 0 && flipProbability <= 1)) throw new IllegalArgumentException("flip probability must be in [0, 1]");
    }

    /** Training default: a random crop x crop window of the resized image, mirrored half of the time. */
    public static Augmentation train(int resize, int crop) {
        double s = (double) crop * crop / ((double) resize * resize);
        return new Augmentation(resize, crop, true, s, s, 1, 1, 0.5);
    }

    /** Evaluation: the centre crop, never mirrored. */
    public static Augmentation eval(int resize, int crop) {
        return new Augmentation(resize, crop, false, 1, 1, 1, 1, 0);
    }

    public Augmentation withScale(double min, double max) { return new Augmentation(resize, crop, randomCrop, min, max, minRatio, maxRatio, flipProbability); }

    public Augmentation withRatio(double min, double max) { return new Augmentation(resize, crop, randomCrop, minScale, maxScale, min, max, flipProbability); }

    public Augmentation withFlipProbability(double p) { return new Augmentation(resize, crop, randomCrop, minScale, maxScale, minRatio, maxRatio, p); }

    /** The decision for one sample. */
    public record Sample(CropBox box, boolean flip) {}

    /** SplitMix64 finaliser: decorrelates the (seed, epoch, key) triple into one stream seed. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public static SplittableRandom random(long seed, int epoch, long sampleKey) {
        return new SplittableRandom(mix(mix(mix(seed) + epoch) + sampleKey));
    }

    /**
     * Crop box (in source pixels) and flip for a source of {@code columns x rows}. Draw order: scale, ratio,
     * x offset, y offset, flip; evaluation draws nothing.
     */
    public Sample sample(int columns, int rows, long seed, int epoch, long sampleKey) {
        double sx = (double) columns / resize, sy = (double) rows / resize;
        int cw = crop, ch = crop, x, y;
        boolean flip = false;
        if (randomCrop) {
            SplittableRandom rnd = random(seed, epoch, sampleKey);
            double area = (double) resize * resize * (minScale == maxScale ? minScale : minScale + (maxScale - minScale) * rnd.nextDouble());
            double logLo = Math.log(minRatio), logHi = Math.log(maxRatio);
            double ratio = Math.exp(logLo == logHi ? logLo : logLo + (logHi - logLo) * rnd.nextDouble());
            cw = (int) Math.round(Math.sqrt(area * ratio));
            ch = (int) Math.round(Math.sqrt(area / ratio));
            cw = Math.clamp(cw, 1, resize);
            ch = Math.clamp(ch, 1, resize);
            x = rnd.nextInt(resize - cw + 1);
            y = rnd.nextInt(resize - ch + 1);
            flip = flipProbability > 0 && rnd.nextDouble() < flipProbability;
        } else {
            // Centre crop, offsets rounded as torchvision's CenterCrop does.
            x = (int) Math.round((resize - cw) / 2.0);
            y = (int) Math.round((resize - ch) / 2.0);
        }
        return new Sample(new CropBox(x * sx, y * sy, cw * sx, ch * sy), flip);
    }
}
