package ich.split;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

final class SplitAssertions {
    private SplitAssertions() {}

    /** Both sides ascending, and together every index of 0..n-1 exactly once. */
    static void assertPartition(Split split, int n) {
        assertEquals(n, split.size(), "images split");
        int[] seen = new int[n];
        for (int[] side : new int[][]{split.train(), split.test()}) {
            for (int k = 0; k < side.length; k++) {
                if (k > 0) assertTrue(side[k - 1] < side[k], "indices ascending");
                assertTrue(side[k] >= 0 && side[k] < n, "index in range");
                seen[side[k]]++;
            }
        }
        for (int i = 0; i < n; i++) assertEquals(1, seen[i], "index " + i + " appears once");
    }

    /** No group has images on both sides; returns the number of groups held out. */
    static int assertGroupsOnOneSide(Split split, String[] groups) {
        boolean[] test = split.testMask();
        Map<String, Boolean> side = new HashMap<>();
        for (int i = 0; i < groups.length; i++) {
            Boolean before = side.putIfAbsent(groups[i], test[i]);
            if (before != null) assertEquals(before, test[i], "group " + groups[i] + " is on both sides");
        }
        return (int) side.values().stream().filter(b -> b).count();
    }
}
