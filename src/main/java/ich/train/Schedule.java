package ich.train;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The seed's two-phase schedule, each part configurable.
 *
 * <p>Phase 1 ("head"): {@code headEpochs} epochs over all training images with the backbone frozen (the seed's
 * {@code layers[:-5]}), Adam lr 1e-4. Phase 2 ("full"): {@code fullEpochs} epochs of the whole network (the seed
 * meant this; its code forgot to unfreeze), lr 4e-4, each epoch {@code trainImages / fullEpochFraction / batch}
 * steps on a fresh random subset, as the seed's {@code steps_per_epoch=len(generator)/6}.
 *
 * <p>Epochs are numbered from 0 over both phases. The rows of an epoch are a permutation drawn from
 * (seed, epoch) alone, so a resumed run sees the same images in the same order.
 *
 * @param cosine when true the learning rate of each phase decays along a half cosine from its value at the
 *               phase's first step to 0 after its last (off by default: the seed used constant rates)
 */
public record Schedule(int headEpochs, double headLr, int fullEpochs, double fullLr, int fullEpochFraction, boolean cosine) {
    public static Schedule seed() {
        return new Schedule(1, 1e-4, 10, 4e-4, 6, false);
    }

    public Schedule {
        if (headEpochs < 0 || fullEpochs < 0 || headEpochs + fullEpochs == 0) {
            throw new IllegalArgumentException("need at least one epoch (head " + headEpochs + ", full " + fullEpochs + ")");
        }
        if (!(headLr > 0) || !(fullLr > 0)) throw new IllegalArgumentException("learning rates must be positive");
        if (fullEpochFraction < 1) throw new IllegalArgumentException("full-epoch fraction must be >= 1: " + fullEpochFraction);
    }

    /** One epoch of the plan. */
    public record Epoch(int index, boolean frozenBackbone, double baseLr, int steps, int firstStepOfPhase, int phaseSteps) {
        /** The learning rate at global step {@code step} (counted from 0 over the run). */
        public double lr(int step, boolean cosine) {
            if (!cosine) return baseLr;
            double t = (step - firstStepOfPhase) / (double) Math.max(1, phaseSteps);
            return baseLr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, t))));
        }

        public String phase() {
            return frozenBackbone ? "head" : "full";
        }
    }

    public int epochs() {
        return headEpochs + fullEpochs;
    }

    /** The epochs for {@code trainImages} images at {@code batch} per step. */
    public List<Epoch> plan(int trainImages, int batch) {
        if (trainImages <= 0) throw new IllegalArgumentException("no training images");
        int allSteps = (trainImages + batch - 1) / batch;
        int fullSteps = Math.max(1, trainImages / fullEpochFraction / batch);
        List<Epoch> epochs = new ArrayList<>();
        int step = 0;
        for (int e = 0; e < headEpochs; e++) {
            epochs.add(new Epoch(e, true, headLr, allSteps, 0, headEpochs * allSteps));
        }
        step = headEpochs * allSteps;
        for (int e = 0; e < fullEpochs; e++) {
            epochs.add(new Epoch(headEpochs + e, false, fullLr, fullSteps, step, fullEpochs * fullSteps));
        }
        return List.copyOf(epochs);
    }

    /**
     * The training rows of an epoch: a permutation of {@code trainRows} from (seed, epoch), cut to
     * {@code steps * batch} rows (the last batch of an all-images epoch may be short).
     */
    public static int[] rows(int[] trainRows, Epoch epoch, int batch, long seed) {
        int[] rows = trainRows.clone();
        SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + 0x5851F42D4C957F2DL * (epoch.index() + 1));
        for (int i = rows.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = rows[i];
            rows[i] = rows[j];
            rows[j] = t;
        }
        return java.util.Arrays.copyOf(rows, Math.min(rows.length, epoch.steps() * batch));
    }
}
