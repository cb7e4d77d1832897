package ich.train;

import ich.nn.Device;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** config.json records the device; what --resume compares leaves it out. */
class TrainConfigTest {
    static TrainConfig config() {
        return new TrainConfig(Path.of("data"), Path.of("data", "labels.csv"), Path.of("run"), new Schedule(1, 1e-4, 2, 4e-4, 1, false),
                4, 36, 32, true, 0.25, null, false, 0, 1e-7, 0, null, 0.125, 0.2, 2, 3, 9, true);
    }

    @Test
    void theDefaultDeviceIsTheCpuWithTheConfiguredThreads() {
        TrainConfig c = config();
        assertEquals(new Device.Cpu(3), c.device());
        assertFalse(c.gpuPreprocess());
        assertTrue(c.toJson().startsWith("{\n  \"device\": \"cpu\",\n  \"preprocess\": \"cpu\",\n  \"data\": "), c.toJson());
    }

    @Test
    void onAGpuPreprocessingFollowsTheDeviceAndCanBeTurnedOff() {
        TrainConfig gpu = config().onDevice(new Device.Gpu(1));
        assertEquals(new Device.Gpu(1), gpu.device());
        assertTrue(gpu.gpuPreprocess());
        assertTrue(gpu.toJson().contains("\"device\": \"gpu:1\",\n  \"preprocess\": \"gpu\",\n"), gpu.toJson());
        TrainConfig copied = gpu.withGpuPreprocess(false);
        assertTrue(copied.toJson().contains("\"preprocess\": \"cpu\""), copied.toJson());
        var e = assertThrows(IllegalArgumentException.class, () -> config().withGpuPreprocess(true));
        assertTrue(e.getMessage().contains("needs a GPU device"), e.getMessage());
    }

    @Test
    void resumeComparesTheSettingsWithoutTheDevice() {
        TrainConfig cpu = config(), gpu = cpu.onDevice(new Device.Gpu(0));
        assertNotEquals(cpu.toJson(), gpu.toJson());
        assertEquals(cpu.settingsJson(), gpu.settingsJson());
        assertFalse(cpu.settingsJson().contains("device"), cpu.settingsJson());
        assertEquals(cpu.settingsJson(), TrainConfig.settingsOf(gpu.toJson()));
        assertEquals(cpu.settingsJson(), TrainConfig.settingsOf(cpu.toJson()));
        assertEquals("gpu:0", TrainConfig.deviceOf(gpu.toJson()));
        assertEquals("cpu", TrainConfig.deviceOf(cpu.toJson()));
        // A config.json from before the device was recorded: the settings alone, taken for a CPU run.
        assertEquals(cpu.settingsJson(), TrainConfig.settingsOf(cpu.settingsJson()));
        assertEquals("cpu", TrainConfig.deviceOf(cpu.settingsJson()));
        // Other settings still count.
        TrainConfig other = new TrainConfig(Path.of("data"), Path.of("data", "labels.csv"), Path.of("run"), new Schedule(1, 1e-4, 2, 4e-4, 1, false),
                8, 36, 32, true, 0.25, null, false, 0, 1e-7, 0, null, 0.125, 0.2, 2, 3, 9, true);
        assertNotEquals(cpu.settingsJson(), TrainConfig.settingsOf(other.onDevice(new Device.Gpu(0)).toJson()));
    }
}
