package ich.labels;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class ImageIdIndexTest {
    /** Against a HashMap: ids of every length 0..40 (8-byte words and tails), ASCII and multi-byte, many repeats. */
    @Test
    void internsLikeAMap() {
        SplittableRandom random = new SplittableRandom(31);
        ImageIdIndex index = new ImageIdIndex();
        Map<String, Integer> map = new HashMap<>();
        List<String> order = new ArrayList<>();
        String alphabet = "0123456789abcdef_IDé東";
        for (int i = 0; i < 100_000; i++) {
            String id;
            if (!order.isEmpty() && random.nextInt(3) == 0) {
                id = order.get(random.nextInt(order.size()));
            } else {
                StringBuilder sb = new StringBuilder();
                int length = random.nextInt(41);
                for (int k = 0; k < length; k++) sb.append(alphabet.charAt(random.nextInt(alphabet.length())));
                id = sb.toString();
            }
            byte[] padded = ("<<" + id + ">>").getBytes(StandardCharsets.UTF_8);
            int number = index.intern(padded, 2, padded.length - 4);
            Integer expected = map.get(id);
            if (expected == null) {
                expected = order.size();
                map.put(id, expected);
                order.add(id);
            }
            assertEquals(expected, number, id);
        }
        assertEquals(order.size(), index.size());
        assertEquals(order, index.ids());
        for (int i = 0; i < order.size(); i += 97) {
            assertEquals(i, index.indexOf(order.get(i)));
            assertEquals(order.get(i), index.id(i));
        }
        assertEquals(-1, index.indexOf("not there at all, far too long"));
        ImageIdIndex copy = ImageIdIndex.of(order);
        for (int i = 0; i < order.size(); i += 13) assertEquals(i, index.indexIn(copy, i));
    }

    @Test
    void hashesSpreadRsnaLikeIds() {
        // ids that differ in one hex digit must not collide in the low bits the table uses
        int buckets = 1 << 16;
        int[] counts = new int[buckets];
        for (int i = 0; i < buckets; i++) {
            byte[] b = String.format("ID_%09x", i).getBytes(StandardCharsets.US_ASCII);
            counts[ImageIdIndex.hash(b, 0, b.length) & (buckets - 1)]++;
        }
        int max = 0;
        for (int c : counts) max = Math.max(max, c);
        assertTrue(max <= 10, "longest bucket " + max);
    }
}
