package ich.eda;

import ich.labels.LabelTable;
import ich.labels.Subtype;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class LabelStatsTest {
    private static byte bits(Subtype... subtypes) {
        int b = 0;
        for (Subtype s : subtypes) b |= s.bit();
        return (byte) b;
    }

    @Test
    void countsPerSubtypeCooccurrenceAndSubtypesPerPositive() {
        List<String> ids = List.of("a", "b", "c", "d", "e", "f");
        byte[] labels = {
                bits(Subtype.ANY, Subtype.SUBDURAL),
                bits(Subtype.ANY, Subtype.SUBDURAL, Subtype.SUBARACHNOID),
                bits(Subtype.ANY, Subtype.EPIDURAL, Subtype.INTRAPARENCHYMAL, Subtype.INTRAVENTRICULAR, Subtype.SUBARACHNOID, Subtype.SUBDURAL),
                bits(),
                bits(Subtype.ANY),               // inconsistent: any without a subtype
                bits(Subtype.INTRAVENTRICULAR),  // inconsistent: a subtype without any
        };
        LabelStats s = LabelStats.of(LabelTable.of(ids, labels));
        assertEquals(6, s.images());
        assertEquals(4, s.positiveImages());
        assertEquals(1, s.positives(Subtype.EPIDURAL));
        assertEquals(1, s.positives(Subtype.INTRAPARENCHYMAL));
        assertEquals(2, s.positives(Subtype.INTRAVENTRICULAR));
        assertEquals(2, s.positives(Subtype.SUBARACHNOID));
        assertEquals(3, s.positives(Subtype.SUBDURAL));
        assertEquals(3, s.negatives(Subtype.SUBDURAL));
        assertEquals(0.5, s.rate(Subtype.SUBDURAL));

        // order: epidural, intraparenchymal, intraventricular, subarachnoid, subdural
        int[][] expected = {
                {1, 1, 1, 1, 1},
                {1, 1, 1, 1, 1},
                {1, 1, 2, 1, 1},
                {1, 1, 1, 2, 2},
                {1, 1, 1, 2, 3},
        };
        assertArrayEquals(expected, s.cooccurrence());
        assertArrayEquals(new int[]{1, 1, 1, 0, 0, 1}, s.subtypesPerPositive());
        assertEquals(1, s.subtypeWithoutAny());
    }

    @Test
    void emptyTable() {
        LabelStats s = LabelStats.of(LabelTable.of(List.of(), new byte[0]));
        assertEquals(0, s.images());
        assertEquals(0, s.rate(Subtype.ANY));
        assertArrayEquals(new int[6], s.subtypesPerPositive());
    }

    @Test
    void binsAndMedian() {
        int[] counts = new int[200];
        counts[3] = 2;
        counts[5] = 1;
        assertEquals(List.of(new Charts.Bin(3, 3, 2), new Charts.Bin(4, 4, 0), new Charts.Bin(5, 5, 1)), Charts.bins(counts, 60));
        counts[199] = 4;
        List<Charts.Bin> wide = Charts.bins(counts, 60);
        assertEquals(new Charts.Bin(3, 6, 3), wide.getFirst(), "197 values in bins of 4");
        assertEquals(199, wide.getLast().to());
        assertEquals(7, wide.stream().mapToInt(Charts.Bin::count).sum());
        assertEquals(List.of(), Charts.bins(new int[5], 60));

        assertEquals(199, EdaReport.median(counts, 7), "3, 3, 5, 199, 199, 199, 199");
        assertEquals(3, EdaReport.median(new int[]{0, 0, 0, 2, 0, 1}, 3));
        assertEquals(4, EdaReport.median(new int[]{0, 0, 0, 1, 0, 1}, 2));
        assertEquals(2.5, EdaReport.median(new int[]{0, 0, 1, 1}, 2));
    }
}
