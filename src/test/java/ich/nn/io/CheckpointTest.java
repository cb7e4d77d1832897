package ich.nn.io;

import ich.nn.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class CheckpointTest {
    @TempDir
    Path dir;

    private static Tensor random(Arena arena, Random r, int... shape) {
        Tensor t = Tensor.allocate(arena, shape);
        for (long i = 0; i < t.size(); i++) t.set(i, (float) r.nextGaussian());
        return t;
    }

    @Test
    void roundTripsModelOptimizerAndTrainingStateExactly() throws IOException {
        Path f = dir.resolve("last.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            Random r = new Random(7);
            Map<String, Tensor> model = new LinkedHashMap<>();
            model.put("conv_stem.weight", random(arena, r, 32, 3, 3, 3));
            model.put("bn1.weight", random(arena, r, 32));
            model.put("bn1.running_mean", random(arena, r, 32));
            model.put("bn1.running_var", random(arena, r, 32));
            model.put("classifier.bias", random(arena, r, 6));
            Map<String, Tensor> optimizer = new LinkedHashMap<>();
            optimizer.put("adam.m.conv_stem.weight", random(arena, r, 32, 3, 3, 3));
            optimizer.put("adam.v.conv_stem.weight", random(arena, r, 32, 3, 3, 3));
            // A learning rate whose decimal form is long: it must come back bit for bit.
            double lr = 4e-4 * Math.cos(0.3) / 3;
            Checkpoint.TrainingState state = new Checkpoint.TrainingState(3, 12345, 12000, lr, -42L,
                    "split:1234567890abcdef;augment:fedcba", "{\"epochs\": 10, \"batch\": 32}", Map.of("phase", "2", "best_val_loss", "0.0712"));
            Checkpoint.write(f, model, optimizer, state);

            Checkpoint.Contents back = Checkpoint.read(f, arena);
            assertEquals(state, back.state());
            assertEquals(Double.doubleToLongBits(lr), Double.doubleToLongBits(back.state().learningRate()));
            assertEquals(model.keySet(), back.model().keySet());
            assertEquals(optimizer.keySet(), back.optimizer().keySet());
            for (var e : model.entrySet()) assertArrayEquals(e.getValue().toArray(), back.model().get(e.getKey()).toArray(), e.getKey());
            for (var e : optimizer.entrySet()) assertArrayEquals(e.getValue().toArray(), back.optimizer().get(e.getKey()).toArray(), e.getKey());
            assertArrayEquals(new int[]{32, 3, 3, 3}, back.optimizer().get("adam.v.conv_stem.weight").shape());
            assertEquals(state, Checkpoint.readState(f));
        }
        // As a plain safetensors file: timm names, the optimizer under its prefix, metadata as strings.
        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(List.of("bn1.running_mean", "bn1.running_var", "bn1.weight", "classifier.bias", "conv_stem.weight",
                    "optimizer.adam.m.conv_stem.weight", "optimizer.adam.v.conv_stem.weight"), st.names());
            Map<String, String> m = st.metadata();
            assertEquals("pt", m.get("format"));
            assertEquals("ich-checkpoint", m.get("ich.format"));
            assertEquals("1", m.get("ich.format_version"));
            assertEquals("3", m.get("ich.epoch"));
            assertEquals("12345", m.get("ich.step"));
            assertEquals("12000", m.get("ich.optimizer_step"));
            assertEquals("-42", m.get("ich.seed"));
            assertEquals("2", m.get("ich.extra.phase"));
            assertEquals("{\"epochs\": 10, \"batch\": 32}", m.get("ich.config"));
        }
    }

    @Test
    void plainSafetensorsIsNotACheckpoint() throws IOException {
        Path f = dir.resolve("weights.safetensors");
        new SafeTensors.Writer().metadata("format", "pt").add("x", SafeTensors.DType.F32, new long[]{1}, new byte[4]).write(f);
        SafeTensorsFormatException e = assertThrows(SafeTensorsFormatException.class, () -> Checkpoint.readState(f));
        assertTrue(e.getMessage().startsWith(f + ": is not an ich checkpoint"), e.getMessage());
    }

    @Test
    void badTrainingStateIsReported() throws IOException {
        Checkpoint.TrainingState state = new Checkpoint.TrainingState(1, 2, 2, 1e-4, 0, "", "");
        Map<String, String> good = Checkpoint.metadata(state);
        record Case(String key, String value, String message) {}
        for (Case c : List.of(
                new Case("ich.format_version", "2", "is checkpoint format version 2; this build reads versions 1 to 1"),
                new Case("ich.epoch", "three", "ich.epoch = \"three\" is not an integer"),
                new Case("ich.step", "-5", "ich.step = -5 is negative"),
                new Case("ich.learning_rate", "fast", "ich.learning_rate = \"fast\" is not a number"),
                new Case("ich.rng_state", null, "checkpoint metadata lacks ich.rng_state"))) {
            Map<String, String> m = new LinkedHashMap<>(good);
            if (c.value == null) m.remove(c.key);
            else m.put(c.key, c.value);
            Path f = dir.resolve(c.key + ".safetensors");
            new SafeTensors.Writer().metadata(m).write(f);
            SafeTensorsFormatException e = assertThrows(SafeTensorsFormatException.class, () -> Checkpoint.readState(f), c.key);
            assertTrue(e.getMessage().contains(c.message) && e.getMessage().contains(f.toString()), e.getMessage());
        }
    }

    @Test
    void nonFloatTensorsAndClashingNamesAreRejected() throws IOException {
        Path f = dir.resolve("i64.safetensors");
        new SafeTensors.Writer().metadata(Checkpoint.metadata(new Checkpoint.TrainingState(0, 0, 0, 1e-3, 1, "", "")))
                .addLongs("bn1.num_batches_tracked", new long[]{}, 5).write(f);
        try (Arena arena = Arena.ofConfined()) {
            SafeTensorsFormatException e = assertThrows(SafeTensorsFormatException.class, () -> Checkpoint.read(f, arena));
            assertTrue(e.getMessage().contains("bn1.num_batches_tracked is I64"), e.getMessage());
            Map<String, Tensor> clash = Map.of("optimizer.x", Tensor.allocate(arena, 1));
            assertThrows(IllegalArgumentException.class, () -> Checkpoint.write(dir.resolve("c.safetensors"), clash, Map.of(),
                    new Checkpoint.TrainingState(0, 0, 0, 1e-3, 1, "", "")));
        }
        assertThrows(IllegalArgumentException.class, () -> new Checkpoint.TrainingState(-1, 0, 0, 1e-3, 1, "", ""));
    }
}
