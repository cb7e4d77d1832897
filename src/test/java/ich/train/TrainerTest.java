package ich.train;

import ich.labels.LabelCsv;
import ich.nn.Tensor;
import ich.nn.io.Checkpoint;
import ich.synth.SynthConfig;
import ich.synth.SynthDataset;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Whole training runs on a small synthetic set: run folder contents, exact repeat, interruption and resume. */
class TrainerTest {
    @TempDir
    static Path dir;
    static Path data;

    @BeforeAll
    static void makeData() throws Exception {
        data = dir.resolve("data");
        SynthDataset.generate(SynthConfig.of(data, 6, 4, 5).withSize(64).withTestFraction(0).withThreads(2), false);
    }

    static TrainConfig config(Path run) {
        return new TrainConfig(data, data.resolve(SynthDataset.TRAIN_LABELS), run, new Schedule(1, 1e-4, 2, 4e-4, 1, false),
                4, 36, 32, true, 0.25, null, false, 0, 1e-7, 0, null, 0.125, 0.2, 2, 2, 9, true);
    }

    static Trainer.Result train(Trainer t, boolean resume) throws Exception {
        return t.run(resume);
    }

    static PrintStream quiet() {
        return new PrintStream(new ByteArrayOutputStream());
    }

    @Test
    void anInterruptedAndResumedRunEndsExactlyAsAnUninterruptedOne() throws Exception {
        Path whole = dir.resolve("whole");
        Trainer.Result a = new Trainer(config(whole), quiet(), false).run(false);
        assertFalse(a.interrupted());
        assertEquals(3, a.epochs());
        for (String f : List.of(Trainer.BEST, Trainer.LAST, Trainer.CONFIG, Trainer.SPLIT, Trainer.ERRORS, TrainingLog.METRICS, TrainingLog.CURVES)) {
            assertTrue(Files.size(whole.resolve(f)) > 0, f);
        }
        List<TrainingLog.Epoch> log = TrainingLog.read(whole);
        assertEquals(3, log.size());
        assertEquals("head", log.get(0).phase());
        for (TrainingLog.Epoch e : log) assertTrue(Double.isFinite(e.trainLoss()) && Double.isFinite(e.valLoss()), e.toString());
        assertEquals(Files.readAllLines(whole.resolve(Trainer.SPLIT)).size() - 1, LabelCsv.read(data.resolve(SynthDataset.TRAIN_LABELS)).images());

        Path twice = dir.resolve("twice");
        new Trainer(config(twice), quiet(), false).run(false);
        try (Arena arena = Arena.ofConfined()) {
            assertSameTensors(Checkpoint.read(whole.resolve(Trainer.LAST), arena).model(), Checkpoint.read(twice.resolve(Trainer.LAST), arena).model());
        }
        Path broken = dir.resolve("broken");
        Trainer first = new Trainer(config(broken), quiet(), false);
        int headSteps = log.get(0).steps();
        first.stopAtStep(headSteps + 1); // inside the first whole-network epoch
        Trainer.Result b1 = first.run(false);
        assertTrue(b1.interrupted());
        assertEquals(headSteps + 1, Checkpoint.readState(broken.resolve(Trainer.LAST)).step());
        Trainer.Result b2 = new Trainer(config(broken), quiet(), false).run(true);
        assertFalse(b2.interrupted());

        try (Arena arena = Arena.ofConfined()) {
            Checkpoint.Contents x = Checkpoint.read(whole.resolve(Trainer.LAST), arena);
            Checkpoint.Contents y = Checkpoint.read(broken.resolve(Trainer.LAST), arena);
            assertEquals(x.state().step(), y.state().step());
            assertEquals(x.state().optimizerStep(), y.state().optimizerStep());
            assertSameTensors(x.model(), y.model());
            assertSameTensors(x.optimizer(), y.optimizer());
        }
        List<TrainingLog.Epoch> resumed = TrainingLog.read(broken);
        for (int e = 0; e < 3; e++) {
            assertEquals(log.get(e).valLoss(), resumed.get(e).valLoss(), "validation loss of epoch " + e);
            assertEquals(log.get(e).trainLoss(), resumed.get(e).trainLoss(), "training loss of epoch " + e);
        }
    }

    @Test
    void aRunFolderIsNotOverwrittenAndResumeNeedsTheSameOptions() throws Exception {
        Path run = dir.resolve("guarded");
        Trainer t = new Trainer(config(run), quiet(), false);
        t.stopAtStep(1);
        assertTrue(t.run(false).interrupted());
        var again = assertThrows(IllegalArgumentException.class, () -> new Trainer(config(run), quiet(), false).run(false));
        assertTrue(again.getMessage().contains("--resume"), again.getMessage());
        TrainConfig other = new TrainConfig(data, data.resolve(SynthDataset.TRAIN_LABELS), run, new Schedule(1, 1e-4, 2, 4e-4, 1, false),
                8, 36, 32, true, 0.25, null, false, 0, 1e-7, 0, null, 0.125, 0.2, 2, 2, 9, true);
        var changed = assertThrows(IllegalArgumentException.class, () -> new Trainer(other, quiet(), false).run(true));
        assertTrue(changed.getMessage().contains("options differ"), changed.getMessage());
        var nothing = assertThrows(IllegalArgumentException.class, () -> new Trainer(config(dir.resolve("empty")), quiet(), false).run(true));
        assertTrue(nothing.getMessage().contains("nothing to resume"), nothing.getMessage());
    }

    @Test
    void aRunResumesOnAnotherDeviceAndFromAConfigWrittenBeforeDevicesWereRecorded() throws Exception {
        Path run = dir.resolve("moved");
        Trainer t = new Trainer(config(run), quiet(), false);
        t.stopAtStep(1);
        assertTrue(t.run(false).interrupted());
        String json = Files.readString(run.resolve(Trainer.CONFIG));
        assertTrue(json.startsWith("{\n  \"device\": \"cpu\",\n  \"preprocess\": \"cpu\",\n"), json);

        // As if the run so far had been on a GPU: its config.json says so; the checkpoint is the same file either way.
        Files.writeString(run.resolve(Trainer.CONFIG), config(run).onDevice(new ich.nn.Device.Gpu(0)).toJson());
        var printed = new ByteArrayOutputStream();
        Trainer second = new Trainer(config(run), new PrintStream(printed, true), false);
        second.stopAtStep(2);
        assertTrue(second.run(true).interrupted());
        assertTrue(printed.toString().contains("resuming on cpu; the run so far was on gpu:0"), printed.toString());
        assertTrue(printed.toString().contains("device: cpu ("), printed.toString());
        assertEquals(json, Files.readString(run.resolve(Trainer.CONFIG)), "config.json names the device the run now uses");
        assertEquals(2, Checkpoint.readState(run.resolve(Trainer.LAST)).step());

        // A config.json without the device lines (written before they existed) resumes as a CPU run, silently.
        Files.writeString(run.resolve(Trainer.CONFIG), config(run).settingsJson());
        var quietly = new ByteArrayOutputStream();
        Trainer third = new Trainer(config(run), new PrintStream(quietly, true), false);
        third.stopAtStep(3);
        assertTrue(third.run(true).interrupted());
        assertFalse(quietly.toString().contains("the run so far was on"), quietly.toString());
        assertEquals(3, Checkpoint.readState(run.resolve(Trainer.LAST)).step());
    }

    private static void assertSameTensors(Map<String, Tensor> a, Map<String, Tensor> b) {
        assertEquals(a.keySet(), b.keySet());
        for (var e : a.entrySet()) assertArrayEquals(e.getValue().toArray(), b.get(e.getKey()).toArray(), e.getKey());
    }
}
