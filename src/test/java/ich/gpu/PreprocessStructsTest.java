package ich.gpu;

import ich.preprocess.SliceKernel;
import ich.preprocess.Window;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Java mirror of the kernel's structs against cuda/preprocess.cu itself: the offsets and sizes its
 * static_asserts state (which nvcc enforces on the C side), the fields its struct declarations list, and the
 * natural C layout of those declarations. A field added, moved or retyped on either side fails here.
 */
class PreprocessStructsTest {
    private static final Path SOURCE = Path.of("cuda", "preprocess.cu");
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static String source() throws IOException {
        assertTrue(Files.isRegularFile(SOURCE), SOURCE.toAbsolutePath() + " not found (tests run from the project root)");
        return Files.readString(SOURCE);
    }

    /** "sizeof(S)" and "S.field" to the value each static_assert states. */
    static Map<String, Integer> asserted(String src) {
        Map<String, Integer> out = new HashMap<>();
        Matcher size = Pattern.compile("static_assert\\(sizeof\\((\\w+)\\) == (\\d+)").matcher(src);
        while (size.find()) out.put("sizeof(" + size.group(1) + ")", Integer.parseInt(size.group(2)));
        Matcher offset = Pattern.compile("static_assert\\(offsetof\\((\\w+), (\\w+)\\) == (\\d+)").matcher(src);
        while (offset.find()) out.put(offset.group(1) + "." + offset.group(2), Integer.parseInt(offset.group(3)));
        return out;
    }

    /** "S.field" to the offset C's natural alignment gives the declared fields, plus "sizeof(S)". */
    static Map<String, Integer> declared(String src) {
        Map<String, Integer> out = new LinkedHashMap<>();
        Map<String, int[]> sizeAlign = new HashMap<>(); // struct name -> {size, align}
        Matcher def = Pattern.compile("#define (\\w+) (\\d+)").matcher(src);
        Map<String, Integer> macros = new HashMap<>();
        while (def.find()) macros.put(def.group(1), Integer.parseInt(def.group(2)));
        Matcher struct = Pattern.compile("struct (\\w+) \\{(.*?)\\n\\};", Pattern.DOTALL).matcher(src);
        Pattern field = Pattern.compile("^\\s*(const )?([\\w]+)(\\*)? (\\w+)(\\[(\\w+)\\])?;", Pattern.MULTILINE);
        while (struct.find()) {
            String name = struct.group(1);
            int offset = 0, maxAlign = 1;
            Matcher f = field.matcher(struct.group(2));
            while (f.find()) {
                int size, align;
                if (f.group(3) != null) {
                    size = align = 8;
                } else {
                    switch (f.group(2)) {
                        case "int32_t", "float", "uint32_t" -> size = align = 4;
                        default -> {
                            int[] sa = sizeAlign.get(f.group(2));
                            assertTrue(sa != null, "unknown field type " + f.group(2) + " in struct " + name);
                            size = sa[0];
                            align = sa[1];
                        }
                    }
                }
                int count = f.group(6) == null ? 1 : macros.getOrDefault(f.group(6), -1);
                if (count < 0) count = Integer.parseInt(f.group(6));
                offset = (offset + align - 1) / align * align;
                out.put(name + "." + f.group(4), offset);
                offset += size * count;
                maxAlign = Math.max(maxAlign, align);
            }
            int total = (offset + maxAlign - 1) / maxAlign * maxAlign;
            sizeAlign.put(name, new int[]{total, maxAlign});
            out.put("sizeof(" + name + ")", total);
        }
        return out;
    }

    @Test
    void javaLayoutEqualsTheStaticAssertsOfTheKernelSource() throws IOException {
        Map<String, Integer> asserted = asserted(source());
        assertTrue(asserted.size() > 20, "found only " + asserted.size() + " static_asserts in " + SOURCE);
        assertEquals(new java.util.TreeMap<>(asserted), new java.util.TreeMap<>(PreprocessStructs.LAYOUT));
    }

    @Test
    void everyDeclaredFieldIsAssertedAtItsNaturalOffset() throws IOException {
        Map<String, Integer> declared = declared(source());
        assertEquals(Map.of("sizeof(IchImage)", 64, "sizeof(IchChannel)", 20, "sizeof(IchBatch)", 240),
                Map.of("sizeof(IchImage)", declared.get("sizeof(IchImage)"), "sizeof(IchChannel)", declared.get("sizeof(IchChannel)"),
                        "sizeof(IchBatch)", declared.get("sizeof(IchBatch)")));
        assertEquals(new java.util.TreeMap<>(declared), new java.util.TreeMap<>(asserted(source())));
        assertEquals(PreprocessStructs.MAX_CHANNELS, Integer.parseInt(source().replaceAll("(?s).*#define ICH_MAX_CHANNELS (\\d+).*", "$1")));
        assertEquals(Kernels.LINEAR_ROWS, Integer.parseInt(source().replaceAll("(?s).*#define ICH_ROWS (\\d+).*", "$1")),
                "the linear kernel's rows per thread, which its grid is sized by");
    }

    @Test
    void imageFieldsLandAtTheirOffsets() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(3 * PreprocessStructs.IMAGE_BYTES);
            s.fill((byte) 0x5A);
            var p = new PreprocessStructs.ImageParams(0x7F00_1234_5678L, 511, 513, 16, 20, 20, true, false, true, 2.5f, -1024f,
                    3.25f, 4.5f, 1.125f, 0.875f);
            PreprocessStructs.writeImage(s, PreprocessStructs.IMAGE_BYTES, p);
            MemorySegment im = s.asSlice(PreprocessStructs.IMAGE_BYTES, PreprocessStructs.IMAGE_BYTES);
            assertEquals(0x7F00_1234_5678L, im.get(I64, 0));
            assertEquals(511, im.get(I32, 8));
            assertEquals(513, im.get(I32, 12));
            assertEquals(16, im.get(I32, 16));
            assertEquals(20, im.get(I32, 20));
            assertEquals(20, im.get(I32, 24));
            assertEquals(1, im.get(I32, 28));
            assertEquals(0, im.get(I32, 32));
            assertEquals(1, im.get(I32, 36));
            assertEquals(2.5f, im.get(F32, 40));
            assertEquals(-1024f, im.get(F32, 44));
            assertEquals(3.25f, im.get(F32, 48));
            assertEquals(4.5f, im.get(F32, 52));
            assertEquals(1.125f, im.get(F32, 56));
            assertEquals(0.875f, im.get(F32, 60));
            // little-endian on the wire: the first byte of rows is its low byte
            assertEquals((byte) (511 & 0xFF), im.get(ValueLayout.JAVA_BYTE, 8));
            // neighbours untouched
            assertEquals((byte) 0x5A, s.get(ValueLayout.JAVA_BYTE, PreprocessStructs.IMAGE_BYTES - 1));
            assertEquals((byte) 0x5A, s.get(ValueLayout.JAVA_BYTE, 2L * PreprocessStructs.IMAGE_BYTES));
        }
    }

    @Test
    void batchCarriesTheWindowsAndNormalisationAsTheCpuComputesThem() {
        Window sig = Window.sigmoid("s", 60, 120);
        Window[] windows = {Window.BRAIN, sig, Window.SOFT_TISSUE};
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(PreprocessStructs.BATCH_BYTES);
            s.fill((byte) 0x77);
            PreprocessStructs.writeBatch(s, windows, 224, 200, SliceKernel.Normalization.IMAGENET);
            assertEquals(3, s.get(I32, 0));
            assertEquals(224, s.get(I32, 4));
            assertEquals(200, s.get(I32, 8));
            assertEquals(1, s.get(I32, 12));
            for (int k = 0; k < 3; k++) {
                long ch = 16 + 20L * k;
                Window w = windows[k];
                if (!w.sigmoid()) {
                    assertEquals(w.low(), s.get(F32, ch));
                    assertEquals(w.high(), s.get(F32, ch + 4));
                }
                assertEquals(w.scale(), s.get(F32, ch + 8));
                assertEquals(w.bias(), s.get(F32, ch + 12));
                assertEquals(w.sigmoid() ? 1 : 0, s.get(I32, ch + 16));
                assertEquals(SliceKernel.Normalization.IMAGENET.mean()[k], s.get(F32, 176 + 4L * k));
                assertEquals(1f / SliceKernel.Normalization.IMAGENET.std()[k], s.get(F32, 208 + 4L * k));
            }
            for (long b = 16 + 20 * 3; b < 176; b++) assertEquals(0, s.get(ValueLayout.JAVA_BYTE, b), "unused channel byte " + b);

            PreprocessStructs.writeBatch(s, new Window[]{Window.BRAIN}, 64, 64, null);
            assertEquals(0, s.get(I32, 12), "no normalisation");
            assertEquals(1f, s.get(F32, 208));
            assertThrows(IllegalArgumentException.class, () -> PreprocessStructs.writeBatch(s, new Window[9], 8, 8, null));
            assertThrows(IllegalArgumentException.class,
                    () -> PreprocessStructs.writeBatch(s, new Window[]{Window.BRAIN, Window.BRAIN, Window.BRAIN, Window.BRAIN}, 8, 8,
                            SliceKernel.Normalization.IMAGENET));
        }
    }
}
