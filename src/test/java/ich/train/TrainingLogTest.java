package ich.train;

import ich.labels.Subtype;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** metrics.csv: the device columns, empty on the CPU, and files written before them still read (resume). */
class TrainingLogTest {
    @TempDir
    Path dir;

    private static double[] values(double start) {
        double[] v = new double[Subtype.COUNT];
        for (int i = 0; i < v.length; i++) v[i] = start + 0.01 * i;
        return v;
    }

    private static TrainingLog.Epoch gpuEpoch(int e) {
        return new TrainingLog.Epoch(e, "full", 4e-4, 10, 320, 0.31, 0.29, 0.33, values(0.8), values(0.9), 12.5, 40.25, 1.5,
                true, 87.5, 11264.5);
    }

    private static TrainingLog.Epoch cpuEpoch(int e) {
        return new TrainingLog.Epoch(e, "head", 1e-4, 10, 320, 0.41, 0.39, 0.43, values(0.7), values(0.6), 30.5, 10.5, 0.5, false);
    }

    @Test
    void deviceFiguresRoundTripAndAreEmptyOnTheCpu() throws Exception {
        TrainingLog log = new TrainingLog();
        log.add(cpuEpoch(0));
        log.add(gpuEpoch(1));
        log.write(dir);
        List<String> lines = Files.readAllLines(dir.resolve(TrainingLog.METRICS));
        assertTrue(lines.get(0).endsWith(",loader_wait_s,best,gpu_util_percent,device_peak_mib"), lines.get(0));
        assertTrue(lines.get(1).endsWith(",0.5,0,,"), "CPU: empty, not zero: " + lines.get(1));
        assertTrue(lines.get(2).endsWith(",1.5,1,87.5,11264.5"), lines.get(2));

        List<TrainingLog.Epoch> read = TrainingLog.read(dir);
        assertEquals(2, read.size());
        assertTrue(Double.isNaN(read.get(0).gpuPercent()) && Double.isNaN(read.get(0).devicePeakMib()), read.get(0).toString());
        assertEquals(87.5, read.get(1).gpuPercent());
        assertEquals(11264.5, read.get(1).devicePeakMib());
        assertEquals(1.5, read.get(1).waitSeconds());
        assertArrayEquals(values(0.8), read.get(1).valAuc(), 1e-9);
    }

    @Test
    void aMetricsFileFromBeforeTheDeviceColumnsReadsAndIsRewrittenWithThem() throws Exception {
        // Written as the first version did: its header and rows end at "best".
        TrainingLog.Epoch old = cpuEpoch(0);
        String row = TrainingLog.row(old);
        String oldRow = row.substring(0, row.length() - 2); // without the two empty device cells
        Files.writeString(dir.resolve(TrainingLog.METRICS), TrainingLog.headerWithoutDeviceColumns() + "\n" + oldRow + "\n",
                StandardCharsets.UTF_8);
        assertEquals(8 + 2 * Subtype.COUNT + 4, oldRow.split(",", -1).length);

        List<TrainingLog.Epoch> read = TrainingLog.read(dir);
        assertEquals(1, read.size());
        TrainingLog.Epoch e = read.getFirst();
        assertEquals(0.39, e.valLoss(), 1e-9);
        assertEquals(0.5, e.waitSeconds(), 1e-9);
        assertFalse(e.best());
        assertTrue(Double.isNaN(e.gpuPercent()) && Double.isNaN(e.devicePeakMib()));

        TrainingLog resumed = new TrainingLog();
        read.forEach(resumed::add);
        resumed.add(gpuEpoch(1));
        resumed.write(dir);
        assertEquals(TrainingLog.header(), Files.readAllLines(dir.resolve(TrainingLog.METRICS)).getFirst());
        assertEquals(2, TrainingLog.read(dir).size());
    }

    @Test
    void anotherHeaderOrARowOfTheWrongWidthIsRefused() throws Exception {
        Path file = dir.resolve(TrainingLog.METRICS);
        Files.writeString(file, "epoch,loss\n0,1\n");
        var e = assertThrows(java.io.IOException.class, () -> TrainingLog.read(dir));
        assertTrue(e.getMessage().contains("header differs"), e.getMessage());
        // A row of the old width under the new header is malformed, not silently read.
        String row = TrainingLog.row(cpuEpoch(0));
        Files.writeString(file, TrainingLog.header() + "\n" + row.substring(0, row.length() - 2) + "\n");
        var m = assertThrows(java.io.IOException.class, () -> TrainingLog.read(dir));
        assertTrue(m.getMessage().contains("malformed row"), m.getMessage());
        assertEquals(List.of(), TrainingLog.read(dir.resolve("nothing-here")));
        assertFalse(Arrays.asList(TrainingLog.header().split(",")).contains(""));
    }
}
