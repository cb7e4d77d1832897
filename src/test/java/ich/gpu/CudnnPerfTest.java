package ich.gpu;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Reading cudnnConvolution*AlgoPerf_t arrays as cudnnFind*AlgorithmEx fills them (no GPU needed). */
class CudnnPerfTest {

    @Test
    void keepsTheAlgorithmsThatRanFastestFirst() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment perf = arena.allocate(Cudnn.PERF_BYTES * 4, 8);
            entry(perf, 0, 1, 0, 0.50f, 4096, 1, 3);
            entry(perf, 1, 6, 0, 0.20f, 1 << 20, 0, 3);   // faster but not deterministic
            entry(perf, 2, 2, 3000, -1f, 0, 1, 3);         // CUDNN_STATUS_NOT_SUPPORTED: left out
            entry(perf, 3, 0, 0, 0.35f, 0, 1, 3);
            List<Cudnn.AlgoPerf> found = Cudnn.parsePerf(perf, 4);
            assertEquals(List.of(new Cudnn.AlgoPerf(6, 0.20f, 1 << 20, false, 3), new Cudnn.AlgoPerf(0, 0.35f, 0, true, 3),
                    new Cudnn.AlgoPerf(1, 0.50f, 4096, true, 3)), found);
            assertEquals(List.of(new Cudnn.AlgoPerf(1, 0.50f, 4096, true, 3)), Cudnn.parsePerf(perf, 1), "only the returned count is read");
        }
    }

    /** A heuristic ranking keeps cuDNN's order (its times are -1: nothing ran) and drops what cuDNN marks unsupported. */
    @Test
    void keepsAHeuristicRankingInCudnnsOrder() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment perf = arena.allocate(Cudnn.PERF_BYTES * 4, 8);
            entry(perf, 0, 6, 0, -1f, 1 << 20, 0, 1);
            entry(perf, 1, 1, 0, -1f, 4096, 1, 3);
            entry(perf, 2, 2, 3000, -1f, 0, 1, 3);
            entry(perf, 3, 0, 0, -1f, 0, 1, 3);
            List<Cudnn.AlgoPerf> ranked = Cudnn.parseRanking(perf, 4);
            assertEquals(List.of(6, 1, 0), ranked.stream().map(Cudnn.AlgoPerf::algo).toList());
            assertEquals(new Cudnn.AlgoPerf(1, Float.NaN, 4096, true, 3), ranked.get(1));
            assertEquals(List.of(), Cudnn.parsePerf(perf, 4), "a ranking's entries were not timed: a search reads none of them");
        }
    }

    private static void entry(MemorySegment perf, int i, int algo, int status, float ms, long memory, int determinism, int math) {
        long at = i * Cudnn.PERF_BYTES;
        perf.set(JAVA_INT, at + Cudnn.PERF_ALGO, algo);
        perf.set(JAVA_INT, at + Cudnn.PERF_STATUS, status);
        perf.set(JAVA_FLOAT, at + Cudnn.PERF_TIME, ms);
        perf.set(JAVA_LONG, at + Cudnn.PERF_MEMORY, memory);
        perf.set(JAVA_INT, at + Cudnn.PERF_DETERMINISM, determinism);
        perf.set(JAVA_INT, at + Cudnn.PERF_MATH, math);
    }
}
