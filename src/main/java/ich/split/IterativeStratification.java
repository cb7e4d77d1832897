package ich.split;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Iterative stratification of multi-label data: Sechidis, Tsoumakas and Vlahavas, "On the stratification of
 * multi-label data", ECML PKDD 2011, Algorithm 1, in the form the iterative-stratification Python package uses
 * for a shuffle split (the units are shuffled first; examples without labels are dealt out last).
 *
 * <p>The algorithm places <em>units</em>. A unit is one image for a plain split, or one patient for a grouped
 * split; it has a size (its number of images) and, per label, a number of positive images. With every size 1
 * and every count 0 or 1 this is exactly the paper's algorithm. With larger units the desires are counted in
 * images, so the folds receive the requested share of images, not of units.
 *
 * <p>The steps of Algorithm 1, in its order:
 * <ol>
 *   <li>Desired counts. Desired images per fold {@code c_j} are the requested fold sizes; desired positives per
 *       fold and label are {@code c_j^l = |D^l| * r_j}, with {@code r_j} the fold's share of all images.</li>
 *   <li>Label choice. Take the label with the fewest (but at least one) remaining positives among the units not
 *       yet placed, ties at random. Rare labels go first because they have the least room for error: left for
 *       later, their few examples would already have been scattered by the decisions made for common labels.</li>
 *   <li>Fold choice. Place each remaining unit having that label, one by one in shuffled order, in the fold that
 *       most desires the label; ties go to the fold that desires the most images overall, further ties at
 *       random.</li>
 *   <li>Update. Placing a unit lowers the fold's desire for every label the unit has, and for images overall, by
 *       the unit's counts. Desires may go negative: that is what steers later units elsewhere.</li>
 *   <li>Unlabelled units, which the paper's text treats apart from Algorithm 1: they are placed last, each in the
 *       fold that desires the most images overall, ties at random. Most RSNA images are negative, so this step
 *       brings the fold sizes to the requested numbers.</li>
 * </ol>
 *
 * <p>How close it gets: while a label is dealt, the folds' desires for it add up to its positives not yet placed,
 * so the fold taking a unit desires at least half of that unit's count and ends at most half a unit's count past
 * its share (half an image for single images). That holds for every label dealt in its own turn. One label
 * escapes it when a label is the OR of the others, as RSNA's {@code any}: once all other subtypes are placed, the
 * units left for {@code any} are exactly those left for the last subtype, the two tie in the label choice and
 * share one turn, and the one not drawn is placed by the other's desires. That label is then only as balanced as chance
 * makes it (on RSNA-like data about half a random split's error on average). This is the paper's algorithm and
 * the package's behaviour, kept as is so that the image-level split matches the seed notebook's.
 *
 * <p>Complexity: O(n*L*k) time and O(n*L) memory for n units, L labels and k folds. Every step touches a unit a
 * bounded number of times: the per-label lists hold each unit once per positive label and are walked once (a
 * label's list is finished in the same round it is chosen, so at most L rounds run, each with an O(L) scan to
 * pick the label). The paper's literal "recount the remaining examples per label" would be O(n*L) per round;
 * the counts are kept up to date instead. The shuffle is O(n). Nothing is quadratic in n.
 *
 * <p>Randomness comes only from the given {@link SplittableRandom}: one Fisher-Yates shuffle, then one draw per
 * tie. The same seed therefore gives the same folds on any JVM.
 */
final class IterativeStratification {
    private IterativeStratification() {}

    /**
     * Deals units into folds.
     *
     * @param unitCount  number of units n
     * @param labelCount number of labels L
     * @param positives  n*L counts, row-major: {@code positives[u*L + l]} positive images of label l in unit u (each >= 0)
     * @param sizes      images per unit (each >= 1), or null when every unit is one image
     * @param foldSizes  desired images per fold; their sum must be the total number of images
     * @param random     tie-breaking and shuffling source
     * @return the fold of each unit, in 0..k-1
     */
    static int[] assign(int unitCount, int labelCount, int[] positives, int[] sizes, long[] foldSizes,
                        SplittableRandom random) {
        long total = 0;
        for (int u = 0; u < unitCount; u++) total += sizes == null ? 1 : sizes[u];
        if (Arrays.stream(foldSizes).sum() != total) {
            throw new IllegalArgumentException("fold sizes " + Arrays.toString(foldSizes) + " do not add up to " + total + " images");
        }
        return new Dealer(unitCount, labelCount, positives, sizes, foldSizes, total, random).deal();
    }

    /** The state of one run: desires per fold, remaining positives per label, and the fold of each unit. */
    private static final class Dealer {
        private final int unitCount, labelCount, foldCount;
        private final int[] positives, sizes;
        private final long[] foldSizes;
        private final SplittableRandom random;
        /** Units in the shuffled order in which they are considered. */
        private final int[] order;
        /** c_j: images each fold still wants. */
        private final double[] desired;
        /** c_j^l, as desiredByLabel[j*L + l]: positives of label l that fold j still wants. */
        private final double[] desiredByLabel;
        /** Positives of each label among the units not placed yet. */
        private final long[] remaining;
        /** Units having each label, in shuffled order: labelMembers[labelStart[l] .. labelStart[l+1]). */
        private final int[] labelStart, labelMembers;
        private final int[] fold;

        Dealer(int unitCount, int labelCount, int[] positives, int[] sizes, long[] foldSizes, long total,
               SplittableRandom random) {
            this.unitCount = unitCount;
            this.labelCount = labelCount;
            this.foldCount = foldSizes.length;
            this.positives = positives;
            this.sizes = sizes;
            this.foldSizes = foldSizes;
            this.random = random;

            // The package shuffles before stratifying, so that the order of the input (often sorted by patient or
            // by label) does not decide which units of a label land where.
            order = new int[unitCount];
            for (int u = 0; u < unitCount; u++) order[u] = u;
            for (int i = unitCount - 1; i > 0; i--) {
                int j = random.nextInt(i + 1);
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }

            remaining = new long[labelCount];
            int[] membership = new int[labelCount];
            for (int u = 0; u < unitCount; u++) {
                for (int l = 0; l < labelCount; l++) {
                    int c = positives[u * labelCount + l];
                    remaining[l] += c;
                    if (c != 0) membership[l]++;
                }
            }

            // Desired counts: exact image counts per fold, and the share r_j of each label's positives.
            desired = new double[foldCount];
            desiredByLabel = new double[foldCount * labelCount];
            for (int j = 0; j < foldCount; j++) {
                desired[j] = foldSizes[j];
                double share = total == 0 ? 0 : (double) foldSizes[j] / total;
                for (int l = 0; l < labelCount; l++) desiredByLabel[j * labelCount + l] = remaining[l] * share;
            }

            labelStart = new int[labelCount + 1];
            for (int l = 0; l < labelCount; l++) labelStart[l + 1] = labelStart[l] + membership[l];
            labelMembers = new int[labelStart[labelCount]];
            int[] next = Arrays.copyOf(labelStart, labelCount);
            for (int u : order) {
                for (int l = 0; l < labelCount; l++) {
                    if (positives[u * labelCount + l] != 0) labelMembers[next[l]++] = u;
                }
            }

            fold = new int[unitCount];
            Arrays.fill(fold, -1);
        }

        int[] deal() {
            for (int label = rarestRemainingLabel(); label >= 0; label = rarestRemainingLabel()) {
                for (int p = labelStart[label]; p < labelStart[label + 1]; p++) {
                    int u = labelMembers[p];
                    if (fold[u] < 0) place(u, foldMostDesiring(label));
                }
            }
            // Units without positives, by overall desire alone.
            for (int u : order) {
                if (fold[u] < 0) place(u, foldMostDesiring(-1));
            }
            fillEmptyFolds();
            return fold;
        }

        /** Label choice: the label with the fewest (but at least one) remaining positives; -1 when none is left. */
        private int rarestRemainingLabel() {
            int best = -1, ties = 0;
            for (int l = 0; l < labelCount; l++) {
                if (remaining[l] <= 0) continue;
                if (best < 0 || remaining[l] < remaining[best]) {
                    best = l;
                    ties = 1;
                } else if (remaining[l] == remaining[best] && random.nextInt(++ties) == 0) {
                    best = l; // reservoir draw: each of the tied labels ends up chosen with probability 1/ties
                }
            }
            return best;
        }

        /**
         * Fold choice: the fold with the largest desire for the label, then the largest overall desire, then at
         * random. With label -1 only the overall desire counts (the units without labels).
         */
        private int foldMostDesiring(int label) {
            int best = 0, ties = 1;
            for (int j = 1; j < foldCount; j++) {
                int cmp = label < 0 ? 0 : Double.compare(desiredByLabel[j * labelCount + label], desiredByLabel[best * labelCount + label]);
                if (cmp == 0) cmp = Double.compare(desired[j], desired[best]);
                if (cmp > 0) {
                    best = j;
                    ties = 1;
                } else if (cmp == 0 && random.nextInt(++ties) == 0) {
                    best = j;
                }
            }
            return best;
        }

        /** Update: the unit joins the fold, whose desires drop by what the unit brings. */
        private void place(int u, int j) {
            fold[u] = j;
            desired[j] -= sizes == null ? 1 : sizes[u];
            for (int l = 0; l < labelCount; l++) {
                int c = positives[u * labelCount + l];
                if (c != 0) {
                    desiredByLabel[j * labelCount + l] -= c;
                    remaining[l] -= c;
                }
            }
        }

        /**
         * Not in the paper: on tiny inputs the greedy rule can leave a requested fold empty (three images with
         * three different labels and a test share of 1/3 all go to train, each being its label's first example).
         * A fold asked for at least one image then takes, from the fold with the most units, the unit whose size
         * is closest to what it asked for (the first such unit in shuffled order). It never fires on real data.
         */
        private void fillEmptyFolds() {
            int[] unitsPerFold = new int[foldCount];
            for (int f : fold) unitsPerFold[f]++;
            for (int j = 0; j < foldCount; j++) {
                if (foldSizes[j] <= 0 || unitsPerFold[j] > 0) continue;
                int donor = 0;
                for (int d = 1; d < foldCount; d++) if (unitsPerFold[d] > unitsPerFold[donor]) donor = d;
                if (unitsPerFold[donor] < 2) return; // fewer units than folds: nothing can be done
                int pick = -1;
                long pickGap = Long.MAX_VALUE;
                for (int u : order) {
                    if (fold[u] != donor) continue;
                    long gap = Math.abs((sizes == null ? 1 : sizes[u]) - foldSizes[j]);
                    if (gap < pickGap) {
                        pick = u;
                        pickGap = gap;
                    }
                }
                fold[pick] = j;
                unitsPerFold[donor]--;
                unitsPerFold[j]++;
            }
        }
    }
}
