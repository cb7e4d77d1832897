package ich.eda;

import ich.labels.LabelTable;
import ich.labels.Subtype;

import java.util.List;

/**
 * Counts of the pivoted training labels, one row per image (duplicate rows merged by the reader): per
 * subtype the images labelled 0 and 1, the co-occurrence of the five hemorrhage subtypes, and how many
 * subtypes each positive image has.
 *
 * @param images               images in the label file
 * @param lines                data lines of the file, duplicates included
 * @param duplicatesMerged     identical duplicate rows the reader merged
 * @param positives            per {@link Subtype} (ordinal), images labelled 1
 * @param cooccurrence         {@code [i][j]}: images positive for both {@link #HEMORRHAGES}{@code [i]} and
 *                             {@code [j]}; the diagonal holds the images positive for that subtype
 * @param subtypesPerPositive  {@code [k]}: images with {@code any} = 1 and exactly k of the five subtypes
 *                             (index 0: {@code any} without a subtype, which the RSNA files do not have)
 * @param subtypeWithoutAny    images with a subtype labelled 1 but {@code any} = 0 (inconsistent labels)
 */
public record LabelStats(int images, long lines, long duplicatesMerged, int[] positives, int[][] cooccurrence,
                         int[] subtypesPerPositive, int subtypeWithoutAny) {

    /** The five hemorrhage subtypes: every subtype but {@code any}, in {@link Subtype} order. */
    public static final List<Subtype> HEMORRHAGES = List.of(Subtype.EPIDURAL, Subtype.INTRAPARENCHYMAL,
            Subtype.INTRAVENTRICULAR, Subtype.SUBARACHNOID, Subtype.SUBDURAL);

    public static LabelStats of(LabelTable table) {
        int n = table.images();
        int h = HEMORRHAGES.size();
        int[] positives = new int[Subtype.COUNT];
        int[][] co = new int[h][h];
        int[] perPositive = new int[h + 1];
        int inconsistent = 0;
        // Counted per distinct label byte: 64 possible bytes, so the pairs loop runs 64 times, not per image.
        int[] byBits = new int[1 << Subtype.COUNT];
        for (int i = 0; i < n; i++) byBits[table.labelBits(i)]++;
        for (int bits = 0; bits < byBits.length; bits++) {
            int count = byBits[bits];
            if (count == 0) continue;
            for (Subtype s : Subtype.values()) if ((bits & s.bit()) != 0) positives[s.ordinal()] += count;
            int subtypes = 0;
            for (int a = 0; a < h; a++) {
                if ((bits & HEMORRHAGES.get(a).bit()) == 0) continue;
                subtypes++;
                for (int b = 0; b < h; b++) if ((bits & HEMORRHAGES.get(b).bit()) != 0) co[a][b] += count;
            }
            if ((bits & Subtype.ANY.bit()) != 0) perPositive[subtypes] += count;
            else if (subtypes > 0) inconsistent += count;
        }
        return new LabelStats(n, table.lines(), table.duplicatesMerged(), positives, co, perPositive, inconsistent);
    }

    public int positives(Subtype s) { return positives[s.ordinal()]; }

    public int negatives(Subtype s) { return images - positives[s.ordinal()]; }

    /** Images with {@code any} = 1. */
    public int positiveImages() { return positives(Subtype.ANY); }

    /** The share of images labelled 1, 0 for an empty table. */
    public double rate(Subtype s) { return images == 0 ? 0 : (double) positives(s) / images; }
}
