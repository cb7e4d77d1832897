package ich.cli;

import ich.labels.Submission;
import ich.labels.SubmissionCsv;
import ich.synth.SynthDataset;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The mission as a user runs it, on a small synthetic set: synth, train, export to ONNX, score with ONNX Runtime
 * and with our engine, evaluate. Real files, real ONNX Runtime, the same commands as the README.
 */
class EndToEndTest {
    @TempDir
    static Path dir;
    static Path data, run;

    @BeforeAll
    static void trainSmallModel() {
        data = dir.resolve("data");
        run = dir.resolve("run");
        assertEquals(0, CliTest.run("synth", "--out", data.toString(), "--studies", "8", "--slices-per-study", "4", "--seed", "4",
                "--size", "64", "--positive-rate", "0.5", "--test-fraction", "0.25").exit());
        CliTest.Run train = CliTest.run("train", "--data", data.toString(), "--out", run.toString(), "--image-size", "32", "--resize", "36",
                "--batch", "8", "--head-epochs", "1", "--epochs", "1", "--epoch-fraction", "1", "--val-fraction", "0.25",
                "--threads", "2", "--workers", "2");
        assertEquals(0, train.exit(), train.err());
        assertTrue(Files.exists(run.resolve("best.safetensors")));
    }

    @Test
    void onnxRuntimeAndTheEngineGiveTheSameSubmissionInTheSamplesOrder() throws Exception {
        Path onnx = dir.resolve("model.onnx");
        CliTest.Run export = CliTest.run("export", "onnx", "--checkpoint", run.resolve("best.safetensors").toString(), "--out", onnx.toString());
        assertEquals(0, export.exit(), export.err());

        Path sample = data.resolve(SynthDataset.SAMPLE_SUBMISSION);
        Path ort = dir.resolve("ort").resolve("submission.csv"), java = dir.resolve("java").resolve("submission.csv");
        CliTest.Run a = CliTest.run("score", "--model", onnx.toString(), "--images", data.resolve("images").toString(),
                "--sample-submission", sample.toString(), "--out", ort.toString(), "--batch", "5");
        assertEquals(0, a.exit(), a.err());
        CliTest.Run b = CliTest.run("score", "--model", run.resolve("best.safetensors").toString(), "--images", data.resolve("images").toString(),
                "--sample-submission", sample.toString(), "--out", java.toString(), "--tta", "flip");
        assertEquals(0, b.exit(), b.err());

        List<String> rows = Files.readAllLines(ort), sampleRows = Files.readAllLines(sample);
        assertEquals("ID,Label", rows.get(0));
        assertEquals(sampleRows.size(), rows.size());
        for (int i = 1; i < rows.size(); i++) {
            String[] cells = rows.get(i).split(",");
            assertEquals(2, cells.length, rows.get(i));
            assertEquals(sampleRows.get(i).split(",")[0], cells[0], "row " + i + " follows the sample submission");
            assertTrue(cells[0].matches("ID_[0-9a-f]{9}_(any|epidural|intraparenchymal|intraventricular|subarachnoid|subdural)"), cells[0]);
            double p = Double.parseDouble(cells[1]);
            assertTrue(p > 0 && p < 1, rows.get(i));
        }

        // Without flip TTA the engine must agree with ONNX Runtime; with it, the average of two close numbers stays close.
        Path plain = dir.resolve("plain").resolve("submission.csv");
        assertEquals(0, CliTest.run("score", "--model", run.resolve("best.safetensors").toString(), "--images", data.resolve("images").toString(),
                "--sample-submission", sample.toString(), "--out", plain.toString(), "--engine", "java").exit());
        Submission x = SubmissionCsv.read(ort), y = SubmissionCsv.read(plain);
        for (String id : x.imageIds()) {
            for (var s : ich.labels.Subtype.values()) {
                float px = x.predictions().probability(x.predictions().indexOf(id), s);
                float py = y.predictions().probability(y.predictions().indexOf(id), s);
                assertEquals(px, py, 1e-4 + 1e-4 * Math.abs(px), id + " " + s);
            }
        }

        CliTest.Run eval = CliTest.run("evaluate", "--predictions", ort.toString(), "--labels", data.resolve(SynthDataset.TEST_LABELS).toString(),
                "--prior-from", data.resolve(SynthDataset.TRAIN_LABELS).toString());
        assertEquals(0, eval.exit(), eval.err());
        assertTrue(eval.out().contains("weighted log loss") && eval.out().contains("prior baseline"), eval.out());
    }

    @Test
    void brokenAndForeignInputsAreReportedAndTheRestScored() throws Exception {
        Path junk = dir.resolve("junk");
        Files.createDirectories(junk);
        Files.writeString(junk.resolve("readme.txt"), "not DICOM");
        Path good;
        try (var s = Files.list(data.resolve("images"))) {
            good = s.sorted().findFirst().orElseThrow();
        }
        Files.write(junk.resolve("ID_cut.dcm"), java.util.Arrays.copyOf(Files.readAllBytes(good), 2000));
        List<String> list = new ArrayList<>(List.of(good.toString(), junk.resolve("readme.txt").toString(), junk.resolve("ID_cut.dcm").toString(),
                junk.resolve("ID_missing.dcm").toString()));
        Path listFile = dir.resolve("inputs.txt");
        Files.write(listFile, list);
        Path out = dir.resolve("mixed").resolve("submission.csv");
        CliTest.Run r = CliTest.run("score", "--model", run.resolve("best.safetensors").toString(), "--list", listFile.toString(), "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals(1 + 6, Files.readAllLines(out).size());
        List<String> errors = Files.readAllLines(out.resolveSibling("errors.csv"));
        assertEquals(4, errors.size(), errors.toString());
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("readme.txt,")), errors.toString());
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("ID_cut,")), errors.toString());
        assertTrue(errors.stream().anyMatch(l -> l.startsWith("ID_missing,")), errors.toString());

        // With --list, path ids are relative to the deepest folder that holds every listed file (here dir).
        Path byPath = dir.resolve("mixed-by-path").resolve("submission.csv");
        CliTest.Run pathIds = CliTest.run("score", "--model", run.resolve("best.safetensors").toString(), "--list", listFile.toString(),
                "--image-id", "path", "--out", byPath.toString());
        assertEquals(0, pathIds.exit(), pathIds.err());
        String goodId = dir.toAbsolutePath().normalize().relativize(good.toAbsolutePath().normalize()).toString()
                .replace(java.io.File.separatorChar, '/').replaceFirst("\\.dcm$", "");
        assertTrue(goodId.contains("/"), goodId);
        List<String> perImage = Files.readAllLines(byPath.resolveSibling("per_image.csv"));
        assertTrue(perImage.stream().anyMatch(l -> l.startsWith(goodId + ",")), goodId + " in " + perImage);
        List<String> pathErrors = Files.readAllLines(byPath.resolveSibling("errors.csv"));
        assertTrue(pathErrors.stream().anyMatch(l -> l.contains("/ID_cut,")), pathErrors.toString());
        CliTest.Run badIds = CliTest.run("score", "--model", run.resolve("best.safetensors").toString(), "--list", listFile.toString(),
                "--image-id", "uid", "--out", out.toString());
        assertTrue(badIds.exit() != 0 && badIds.err().contains("--image-id takes name or path, not uid"), badIds.err());
    }

    @Test
    void scoringOnADeviceUsesTheEngineAndAMissingGpuIsAClearError() throws Exception {
        String checkpoint = run.resolve("best.safetensors").toString(), images = data.resolve("images").toString();
        CliTest.Run ort = CliTest.run("score", "--model", checkpoint, "--images", images, "--out", dir.resolve("d-ort").resolve("s.csv").toString(),
                "--engine", "onnxruntime", "--device", "cpu");
        assertEquals(2, ort.exit(), "--device runs our engine, not ONNX Runtime");
        assertTrue(ort.err().contains("--device runs our engine: use it with --engine java"), ort.err());

        Path onCpu = dir.resolve("d-cpu").resolve("s.csv"), plain = dir.resolve("d-plain").resolve("s.csv");
        assertEquals(0, CliTest.run("score", "--model", checkpoint, "--images", images, "--out", onCpu.toString(), "--device", "cpu").exit());
        assertEquals(0, CliTest.run("score", "--model", checkpoint, "--images", images, "--out", plain.toString(), "--engine", "java").exit());
        assertEquals(Files.readAllLines(plain), Files.readAllLines(onCpu), "--device cpu is the engine on the CPU");
        Path fp32 = dir.resolve("d-fp32").resolve("s.csv");
        assertEquals(0, CliTest.run("score", "--model", checkpoint, "--images", images, "--out", fp32.toString(), "--device", "cpu",
                "--precision", "fp32").exit());
        assertEquals(Files.readAllLines(plain), Files.readAllLines(fp32), "--precision fp32 is what the CPU computes anyway");
        for (String[] wrong : new String[][] {{"--device", "cpu", "--precision", "bf16"}, {"--precision", "tf32"}, {"--device", "cpu", "--precision", "fp16"}}) {
            Path never = dir.resolve("d-never").resolve("s.csv");
            List<String> args = new ArrayList<>(List.of("score", "--model", checkpoint, "--images", images, "--out", never.toString()));
            args.addAll(List.of(wrong));
            CliTest.Run r = CliTest.run(args.toArray(String[]::new));
            assertEquals(2, r.exit(), String.join(" ", wrong) + ": " + r.out());
            assertTrue(wrong[wrong.length - 1].equals("fp16") ? r.err().contains("unknown precision 'fp16'")
                    : r.err().contains("needs --device gpu (the device is cpu)"), r.err());
            assertTrue(!Files.exists(never), "nothing written");
        }

        org.junit.jupiter.api.Assumptions.assumeTrue(ich.gpu.Gpu.probe() instanceof ich.gpu.Gpu.Unavailable, "a GPU is present");
        Path onGpu = dir.resolve("d-gpu").resolve("s.csv");
        CliTest.Run gpu = CliTest.run("score", "--model", checkpoint, "--images", images, "--out", onGpu.toString(), "--device", "gpu");
        assertEquals(2, gpu.exit(), "no GPU: a usage error, " + gpu.out());
        assertTrue(gpu.err().startsWith("ich score: ") && gpu.err().strip().length() > "ich score: ".length() + 10,
                "the reason is given: " + gpu.err());
        assertTrue(!Files.exists(onGpu), "nothing written");
    }
}
