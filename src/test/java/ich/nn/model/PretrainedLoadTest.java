package ich.nn.model;

import ich.nn.Parameter;
import ich.nn.Tensor;
import ich.nn.io.PretrainedWeights;
import ich.nn.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** The --pretrained path end to end on a file shaped like timm's ImageNet efficientnet_b0 (written here). */
class PretrainedLoadTest {

    @Test
    void anImageNetFileLoadsIntoTheBackboneAndLeavesTheNewHead(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("efficientnet_b0.safetensors");
        try (Arena arena = Arena.ofShared();
             EfficientNetB0 imagenet = EfficientNetB0.onHost(new EfficientNetB0.Config(1000, 0.2, 0.2, 0.1, 1e-5));
             EfficientNetB0 model = EfficientNetB0.onHost(EfficientNetB0.Config.defaults())) {
            imagenet.initialize(100);
            model.initialize(1);
            SafeTensors.Writer w = new SafeTensors.Writer();
            for (Parameter p : imagenet.namedParameters().values()) {
                w.add(p.name(), p.value());
                if (p.name().endsWith(".running_var")) {
                    w.addLongs(p.name().replace("running_var", "num_batches_tracked"), new long[0], 12345L);
                }
            }
            w.write(file);
            float[] headBefore = model.namedParameters().get("classifier.weight").value().toArray();

            PretrainedWeights.Result result = PretrainedWeights.load(file, model.shapes(), arena);
            assertEquals(2, result.report().skipped().size(), result.report().toString());
            assertEquals(49, result.report().ignored().size());
            LoadReport report = model.load(result.tensors());
            assertEquals(309, report.loaded().size());
            assertEquals(java.util.List.of("classifier.weight", "classifier.bias"), report.missing());
            assertTrue(report.unexpected().isEmpty() && report.misShaped().isEmpty(), report.describe());
            for (String name : model.namedParameters().keySet()) {
                if (name.startsWith("classifier.")) continue;
                assertArrayEquals(imagenet.namedParameters().get(name).value().toArray(), model.namedParameters().get(name).value().toArray(), name);
            }
            assertTrue(Arrays.equals(headBefore, model.namedParameters().get("classifier.weight").value().toArray()), "the 6-label head keeps its initialisation");
        }
    }
}
