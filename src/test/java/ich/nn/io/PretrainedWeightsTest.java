package ich.nn.io;

import ich.nn.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** A file laid out like timm's published efficientnet_b0 weights, cut down to a few layers. */
class PretrainedWeightsTest {
    @TempDir
    Path dir;

    private static float value(String name, int i) {
        return (name.hashCode() % 97 + i % 13) / 64f;
    }

    private static byte[] f32(String name, int n) {
        ByteBuffer b = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) b.putFloat(value(name, i));
        return b.array();
    }

    /** F16 holds these values exactly (multiples of 1/64 below 4). */
    private static byte[] f16(String name, int n) {
        ByteBuffer b = ByteBuffer.allocate(n * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) b.putShort(Float.floatToFloat16(value(name, i)));
        return b.array();
    }

    /** timm-like: stem, bn1 with its counter, one depthwise conv in F16, the head conv, a 1000-class classifier, an extra tensor. */
    private Path timmLike(Map<String, int[]> extraF32) throws IOException {
        SafeTensors.Writer w = new SafeTensors.Writer().metadata("format", "pt");
        Map<String, int[]> f32 = new LinkedHashMap<>();
        f32.put("conv_stem.weight", new int[]{32, 3, 3, 3});
        for (String s : List.of("weight", "bias", "running_mean", "running_var")) f32.put("bn1." + s, new int[]{32});
        f32.put("conv_head.weight", new int[]{1280, 32, 1, 1});
        f32.put("classifier.weight", new int[]{1000, 1280});
        f32.put("classifier.bias", new int[]{1000});
        f32.putAll(extraF32);
        for (var e : f32.entrySet()) {
            int n = 1;
            for (int d : e.getValue()) n *= d;
            w.add(e.getKey(), SafeTensors.DType.F32, java.util.Arrays.stream(e.getValue()).asLongStream().toArray(), f32(e.getKey(), n));
        }
        w.add("blocks.0.0.conv_dw.weight", SafeTensors.DType.F16, new long[]{32, 1, 3, 3}, f16("blocks.0.0.conv_dw.weight", 288));
        w.addLongs("bn1.num_batches_tracked", new long[]{}, 1234567);
        w.addLongs("blocks.0.0.bn1.num_batches_tracked", new long[]{}, 1234567);
        Path f = dir.resolve("model.safetensors");
        w.write(f);
        return f;
    }

    private static Map<String, int[]> model() {
        Map<String, int[]> m = new LinkedHashMap<>();
        m.put("conv_stem.weight", new int[]{32, 3, 3, 3});
        for (String s : List.of("weight", "bias", "running_mean", "running_var")) m.put("bn1." + s, new int[]{32});
        m.put("blocks.0.0.conv_dw.weight", new int[]{32, 1, 3, 3});
        m.put("blocks.0.0.se.conv_reduce.weight", new int[]{8, 32, 1, 1});
        m.put("conv_head.weight", new int[]{1280, 32, 1, 1});
        m.put("classifier.weight", new int[]{6, 1280});
        m.put("classifier.bias", new int[]{6});
        return m;
    }

    @Test
    void loadsTheBackboneSkipsTheHeadAndReportsTheRest() throws IOException {
        Path f = timmLike(Map.of("head.extra", new int[]{4}));
        try (Arena arena = Arena.ofConfined()) {
            PretrainedWeights.Result r = PretrainedWeights.load(f, model(), arena);
            PretrainedWeights.Report rep = r.report();
            assertEquals(Set.of("conv_stem.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                    "blocks.0.0.conv_dw.weight", "conv_head.weight"), Set.copyOf(rep.loaded()));
            assertEquals(Set.copyOf(rep.loaded()), r.tensors().keySet());
            assertEquals(Set.of("classifier.weight", "classifier.bias"), Set.copyOf(rep.skipped()));
            assertEquals(Set.of("classifier.weight", "classifier.bias"), Set.copyOf(rep.keptInitialised()));
            assertEquals(Set.of("bn1.num_batches_tracked", "blocks.0.0.bn1.num_batches_tracked"), Set.copyOf(rep.ignored()));
            assertEquals(List.of("head.extra"), rep.unexpected());
            assertEquals(List.of("blocks.0.0.se.conv_reduce.weight"), rep.missing());
            assertTrue(rep.mismatched().isEmpty());
            assertFalse(rep.complete());

            Tensor dw = r.tensors().get("blocks.0.0.conv_dw.weight");
            assertArrayEquals(new int[]{32, 1, 3, 3}, dw.shape());
            for (int i = 0; i < 288; i++) assertEquals(value("blocks.0.0.conv_dw.weight", i), dw.get(i), "F16 widened exactly");
            Tensor stem = r.tensors().get("conv_stem.weight");
            for (int i = 0; i < 864; i++) assertEquals(value("conv_stem.weight", i), stem.get(i));

            String text = rep.toString();
            assertTrue(text.contains("loaded 7 of 8 tensors"), text);
            assertTrue(text.contains("ignored: 2 num_batches_tracked"), text);
            assertTrue(text.contains("missing from the file (left as initialised): 1: blocks.0.0.se.conv_reduce.weight"), text);
            assertTrue(text.contains("unexpected (in the file, not in the model): 1: head.extra"), text);
            assertTrue(text.contains("mis-shaped: none"), text);
            assertTrue(text.contains(f.toString()), text);
        }
    }

    @Test
    void aCompleteFileIsComplete() throws IOException {
        Path f = timmLike(Map.of("blocks.0.0.se.conv_reduce.weight", new int[]{8, 32, 1, 1}));
        try (Arena arena = Arena.ofConfined()) {
            PretrainedWeights.Report rep = PretrainedWeights.load(f, model(), arena).report();
            assertTrue(rep.complete(), rep.toString());
            assertEquals(8, rep.loaded().size());
        }
    }

    @Test
    void misShapedTensorsAreAnErrorNamingThem() throws IOException {
        Path f = timmLike(Map.of());
        Map<String, int[]> other = model();
        other.put("conv_stem.weight", new int[]{40, 3, 3, 3});  // a wider stem: another architecture
        other.put("bn1.num_batches_tracked", new int[]{});     // ignored on both sides
        try (Arena arena = Arena.ofConfined()) {
            PretrainedWeights.MismatchException e = assertThrows(PretrainedWeights.MismatchException.class,
                    () -> PretrainedWeights.load(f, other, arena));
            assertTrue(e.getMessage().contains("conv_stem.weight: model [40, 3, 3, 3], file F32[32, 3, 3, 3]"), e.getMessage());
            assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
            assertEquals(1, e.report().mismatched().size());
            assertTrue(e.report().toString().contains("mis-shaped: 1: conv_stem.weight"), e.report().toString());
        }
        // Loading the classifier too (no skipped prefix) meets the 1000-class head: mis-shaped.
        try (Arena arena = Arena.ofConfined()) {
            PretrainedWeights.MismatchException e = assertThrows(PretrainedWeights.MismatchException.class,
                    () -> PretrainedWeights.load(f, model(), Set.of(), arena));
            assertTrue(e.getMessage().contains("classifier.weight: model [6, 1280], file F32[1000, 1280]"), e.getMessage());
        }
    }

    @Test
    void anIntegerTensorUnderAnExpectedNameIsAMismatch() throws IOException {
        Path f = dir.resolve("int.safetensors");
        new SafeTensors.Writer().addLongs("bn1.weight", new long[]{2}, 1, 2).write(f);
        try (Arena arena = Arena.ofConfined()) {
            PretrainedWeights.MismatchException e = assertThrows(PretrainedWeights.MismatchException.class,
                    () -> PretrainedWeights.load(f, Map.of("bn1.weight", new int[]{2}), arena));
            assertTrue(e.getMessage().contains("file I64[2]"), e.getMessage());
        }
    }
}
