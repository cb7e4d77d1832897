package ich.gpu;

import ich.nn.ConvGeometry;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static ich.gpu.NnKernels.DepthwisePass.BACKWARD_DATA;
import static ich.gpu.NnKernels.DepthwisePass.BACKWARD_FILTER;
import static ich.gpu.NnKernels.DepthwisePass.FORWARD;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The host-side logic of {@link NnKernels} that needs no GPU: which depthwise shapes the kernels take, the
 * tilings and launch sizes (every one must fit the kernels' limits, since a wrong one only shows on a GPU), and
 * the argument checks, the multi-tensor Adam table (chunks, byte layout, overlap checks, scalars), and the bf16
 * path's tilings, batch-norm chunks and workspace size and argument checks.
 */
class NnKernelsHostTest {
    private static final long A = 0x7f00_0000_0000L, MB = 1 << 20;

    @Test
    void everyB0DepthwiseShapeAndTheTestShapesAreSupported() {
        for (ConvGeometry g : NnKernelsTest.depthwiseShapes()) assertTrue(NnKernels.supportsDepthwise(g), g::toString);
        // B0's depthwise layers at 256x256 and 512x512, batch 256
        int[][] b0 = {{32, 3, 1, 128}, {96, 3, 2, 128}, {144, 3, 1, 64}, {144, 5, 2, 64}, {240, 5, 1, 32}, {240, 3, 2, 32},
                {480, 3, 1, 16}, {480, 5, 1, 16}, {672, 5, 1, 16}, {672, 5, 2, 16}, {1152, 5, 1, 8}, {1152, 3, 1, 8}};
        for (int[] l : b0) {
            for (int scale : new int[]{1, 2}) {
                ConvGeometry g = ConvGeometry.square(256, l[0], l[3] * scale, l[3] * scale, l[0], l[1], l[2], l[0]);
                assertTrue(NnKernels.supportsDepthwise(g), g::toString);
            }
        }
    }

    @Test
    void onlyDepthwiseShapesWithAtMostABlockOfTapsAreSupported() {
        assertFalse(NnKernels.supportsDepthwise(ConvGeometry.square(2, 16, 8, 8, 16, 3, 1, 1)), "dense");
        assertFalse(NnKernels.supportsDepthwise(ConvGeometry.square(2, 16, 8, 8, 32, 3, 1, 16)), "groups == c, k = 2c");
        assertFalse(NnKernels.supportsDepthwise(ConvGeometry.square(2, 16, 8, 8, 16, 3, 1, 8)), "grouped");
        assertTrue(NnKernels.supportsDepthwise(new ConvGeometry(1, 4, 40, 40, 4, 16, 16, 1, 1, 0, 0, 4)), "16x16 = 256 taps");
        assertFalse(NnKernels.supportsDepthwise(new ConvGeometry(1, 4, 40, 40, 4, 17, 16, 1, 1, 0, 0, 4)), "17x16 taps");
    }

    @Test
    void sharedMemoryOfTheKernelLayouts() {
        // forward: 9 taps + the 34 x 34 window of 32 x 32 outputs
        ConvGeometry k3 = ConvGeometry.square(1, 8, 128, 128, 8, 3, 1, 8);
        assertEquals(9 + 34 * 34, NnKernels.depthwiseSharedFloats(k3, FORWARD, 32, 32));
        // filter gradient: dy values and window offsets of 32 x 32 outputs, then the same window
        assertEquals(2 * 32 * 32 + 34 * 34, NnKernels.depthwiseSharedFloats(k3, BACKWARD_FILTER, 32, 32));
        // 5x5 stride 2: the window of 32 x 32 outputs is 67 x 67
        ConvGeometry k5s2 = ConvGeometry.square(1, 8, 128, 128, 8, 5, 2, 8);
        assertEquals(25 + 67 * 67, NnKernels.depthwiseSharedFloats(k5s2, FORWARD, 32, 32));
        // data gradient of 32 x 32 dx pixels gathers from (32 + 3) / 2 + 2 = 19 dy rows and columns
        assertEquals(25 + 19 * 19, NnKernels.depthwiseSharedFloats(k5s2, BACKWARD_DATA, 32, 32));
    }

    @Test
    void b0TilingsAreTheIntendedOnes() {
        // a big plane: 32 x 32 output tiles, one plane a block, 16 tiles a plane
        ConvGeometry stem = ConvGeometry.square(256, 32, 128, 128, 32, 3, 1, 32);
        NnKernels.DepthwiseTiling t = NnKernels.depthwiseTiling(stem, FORWARD);
        assertEquals(new NnKernels.DepthwiseTiling(1, 32, 32, 9 + 34 * 34), t);
        assertEquals(256 * 32 * 16, NnKernels.depthwiseBlocks(stem, FORWARD, t, 256L * 32));
        // the 8x8 planes of the late stages: 16 planes a block, 1024 outputs
        ConvGeometry late = ConvGeometry.square(256, 1152, 8, 8, 1152, 5, 1, 1152);
        t = NnKernels.depthwiseTiling(late, FORWARD);
        assertEquals(new NnKernels.DepthwiseTiling(16, 8, 8, 16 * (25 + 12 * 12)), t);
        assertEquals(256 * 1152 / 16, NnKernels.depthwiseBlocks(late, FORWARD, t, 256L * 1152));
        // the filter gradient packs images of one channel
        assertEquals(16, NnKernels.depthwiseTiling(late, BACKWARD_FILTER).group());
        // 1x1 planes: as many as the shared memory takes (18 floats each for 3x3)
        ConvGeometry dot = ConvGeometry.square(4, 2048, 1, 1, 2048, 3, 1, 2048);
        assertEquals(8192 / 18, NnKernels.depthwiseTiling(dot, FORWARD).group());
    }

    /** Random geometries: every tiling fits the kernels' limits and covers the plane. */
    @Test
    void everyTilingFitsTheSharedMemoryAndTheBlock() {
        SplittableRandom random = new SplittableRandom(3);
        for (int i = 0; i < 20_000; i++) {
            int r = 1 + random.nextInt(i % 10 == 0 ? 16 : 7), s = 1 + random.nextInt(i % 10 == 0 ? 16 : 7);
            int sh = 1 + random.nextInt(4), sw = 1 + random.nextInt(4), ph = random.nextInt(r + 2), pw = random.nextInt(s + 2);
            int h = Math.max(1, r - 2 * ph) + random.nextInt(i % 2 == 0 ? 10 : 300);
            int w = Math.max(1, s - 2 * pw) + random.nextInt(i % 3 == 0 ? 10 : 300);
            int n = 1 + random.nextInt(300), c = 1 + random.nextInt(1200);
            ConvGeometry g = new ConvGeometry(n, c, h, w, c, r, s, sh, sw, ph, pw, c);
            assertTrue(NnKernels.supportsDepthwise(g), g::toString);
            for (NnKernels.DepthwisePass pass : NnKernels.DepthwisePass.values()) {
                NnKernels.DepthwiseTiling t = NnKernels.depthwiseTiling(g, pass);
                String what = pass + " " + g + " -> " + t;
                boolean data = pass == BACKWARD_DATA;
                int height = data ? h : g.p(), width = data ? w : g.q();
                long planes = pass == BACKWARD_FILTER ? n : (long) n * c;
                assertTrue(t.sharedFloats() <= NnKernels.DEPTHWISE_SHARED_FLOATS && t.sharedBytes() <= 32 * 1024, what);
                assertEquals(t.group() * NnKernels.depthwiseSharedFloats(g, pass, t.rows(), t.cols()), t.sharedFloats(), what);
                assertTrue(t.rows() >= 1 && t.rows() <= height && t.cols() >= 1 && t.cols() <= width, what);
                // the kernels keep one column per thread
                assertTrue(t.cols() <= NnKernels.DEPTHWISE_TILE_COLUMNS && t.cols() <= NnKernels.BLOCK, what);
                assertTrue(t.group() >= 1 && t.group() <= planes, what);
                assertTrue(t.group() == 1 || (t.rows() == height && t.cols() == width), what + ": packs planes but not whole ones");
                int blocks = NnKernels.depthwiseBlocks(g, pass, t, planes);
                assertTrue(blocks >= 1 && blocks <= NnKernels.MAX_TILE_BLOCKS, what);
            }
        }
    }

    @Test
    void depthwiseArgumentChecks() {
        ConvGeometry g = ConvGeometry.square(2, 8, 9, 9, 8, 3, 2, 8);
        long xBytes = 2 * 8 * 9 * 9 * 4, wBytes = 8 * 9 * 4, yBytes = 2 * 8 * 5 * 5 * 4;
        NnKernels.checkDepthwise("op", g, A, xBytes, A + MB, wBytes, A + 2 * MB, yBytes); // disjoint: fine
        NnKernels.checkDepthwise("op", g, A + MB, xBytes, A, wBytes, A + MB - yBytes, yBytes); // touching: fine

        assertMessage("not a depthwise", () -> NnKernels.checkDepthwise("op", ConvGeometry.square(2, 8, 9, 9, 8, 3, 2, 1),
                A, xBytes, A + MB, wBytes, A + 2 * MB, yBytes));
        assertMessage("do not take", () -> NnKernels.checkDepthwise("op", new ConvGeometry(1, 2, 30, 30, 2, 17, 17, 1, 1, 0, 0, 2),
                A, xBytes, A + MB, wBytes, A + 2 * MB, yBytes));
        assertMessage("null device pointer", () -> NnKernels.checkDepthwise("op", g, 0, xBytes, A + MB, wBytes, A + 2 * MB, yBytes));
        assertMessage("null device pointer", () -> NnKernels.checkDepthwise("op", g, A, xBytes, A + MB, wBytes, 0, yBytes));
        assertMessage("overlaps", () -> NnKernels.checkDepthwise("op", g, A, xBytes, A + MB, wBytes, A, yBytes));
        assertMessage("overlaps", () -> NnKernels.checkDepthwise("op", g, A, xBytes, A + MB, wBytes, A + MB + wBytes - 4, yBytes));
        assertMessage("no geometry", () -> NnKernels.checkDepthwise("op", null, A, xBytes, A + MB, wBytes, A + 2 * MB, yBytes));
    }

    @Test
    void overlapsComparesAddressesUnsigned() {
        assertTrue(NnKernels.overlaps(A, 8, A + 4, 8));
        assertFalse(NnKernels.overlaps(A, 8, A + 8, 8));
        assertFalse(NnKernels.overlaps(A + 8, 8, A, 8));
        assertTrue(NnKernels.overlaps(A, 100, A + 10, 1));
        assertFalse(NnKernels.overlaps(A, 0, A, 8), "an empty range overlaps nothing");
        long high = 0xFFFF_FF00_0000_0000L; // negative as a long
        assertTrue(NnKernels.overlaps(high, 16, high + 8, 16));
        assertFalse(NnKernels.overlaps(high, 16, A, 16));
    }

    @Test
    void conversionAndTransposeChecksAndLaunchSizes() {
        NnKernels.checkConversion("f32ToBf16", A, 4, A + 4 * 100, 2, 100);
        NnKernels.checkConversion("f32ToBf16", 0, 4, 0, 2, 0); // nothing to convert: no pointers needed
        assertMessage("-1 elements", () -> NnKernels.checkConversion("f32ToBf16", A, 4, A + MB, 2, -1));
        assertMessage("null device pointer", () -> NnKernels.checkConversion("bf16ToF32", A, 2, 0, 4, 10));
        assertMessage("overlaps", () -> NnKernels.checkConversion("f32ToBf16", A, 4, A + 4 * 99, 2, 100));
        assertMessage("overlaps", () -> NnKernels.checkConversion("bf16ToF32", A, 2, A, 4, 1));

        assertEquals(2L * 3 * 4 * 5, NnKernels.checkTranspose("t", A, A + MB, 2, 3, 4, 5));
        assertMessage("sizes must be positive", () -> NnKernels.checkTranspose("t", A, A + MB, 2, 0, 4, 5));
        assertMessage("null device pointer", () -> NnKernels.checkTranspose("t", 0, A + MB, 2, 3, 4, 5));
        assertMessage("in place", () -> NnKernels.checkTranspose("t", A, A, 2, 3, 4, 5));
        assertMessage("in place", () -> NnKernels.checkTranspose("t", A, A + 2 * 3 * 4 * 5 * 4 - 4, 2, 3, 4, 5));

        assertEquals(3 * 2 * 3, NnKernels.transposeBlocks(3, 37, 65)); // 2 tiles of channels, 3 of pixels
        assertEquals(1, NnKernels.transposeBlocks(1, 1, 1));
        assertEquals(NnKernels.MAX_TILE_BLOCKS, NnKernels.transposeBlocks(65_535, 1152, 512 * 512));
    }

    // ---------------------------------------------------------------- multi-tensor Adam

    /** Tensors of the given sizes laid out one after another from A, each as param, grad, m, v. */
    private static List<NnKernels.AdamPointers> adamTensors(long... sizes) {
        List<NnKernels.AdamPointers> out = new ArrayList<>();
        long at = A;
        for (long n : sizes) {
            long bytes = n * Float.BYTES;
            out.add(new NnKernels.AdamPointers(at, at + bytes, at + 2 * bytes, at + 3 * bytes, n));
            at += 4 * bytes;
        }
        return out;
    }

    @Test
    void adamLayoutCutsEachTensorIntoChunks() {
        // 1 element, exactly one chunk, one element more than a chunk, a small one, two chunks and a bit
        List<NnKernels.AdamPointers> tensors = adamTensors(1, 4096, 4097, 7, 2 * 4096 + 3);
        NnKernels.AdamLayout layout = NnKernels.adamLayout(tensors, 4096);
        assertArrayEquals(new long[]{0, 1, 2, 4, 5}, layout.firstChunk());
        assertArrayEquals(new int[]{0, 1, 2, 2, 3, 4, 4, 4}, layout.chunkTensor());
        // every element of every tensor in exactly one chunk, as the kernel walks them
        for (int t = 0; t < tensors.size(); t++) {
            long covered = 0;
            for (int c = 0; c < layout.chunks(); c++) {
                if (layout.chunkTensor()[c] != t) continue;
                long begin = (c - layout.firstChunk()[t]) * 4096L, end = Math.min(begin + 4096, tensors.get(t).n());
                assertEquals(covered, begin, "chunks of tensor " + t + " are consecutive");
                assertTrue(end > begin, "no empty chunk");
                covered = end;
            }
            assertEquals(tensors.get(t).n(), covered, "tensor " + t + " covered");
        }
    }

    @Test
    void adamTableImageIsTheKernelsLayout() {
        List<NnKernels.AdamPointers> tensors = adamTensors(3, 5000);
        NnKernels.AdamLayout layout = NnKernels.adamLayout(tensors, NnKernels.ADAM_CHUNK);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment image = NnKernels.adamTableImage(arena, tensors, layout);
            assertEquals(32 + 2 * 48 + 3 * 4, image.byteSize(), "scalar slot, two records, three chunks");
            NnKernels.AdamPointers second = tensors.get(1);
            long record = 32 + 48;
            assertEquals(second.param(), image.get(JAVA_LONG_UNALIGNED, record));
            assertEquals(second.grad(), image.get(JAVA_LONG_UNALIGNED, record + 8));
            assertEquals(second.m(), image.get(JAVA_LONG_UNALIGNED, record + 16));
            assertEquals(second.v(), image.get(JAVA_LONG_UNALIGNED, record + 24));
            assertEquals(5000, image.get(JAVA_LONG_UNALIGNED, record + 32));
            assertEquals(1, image.get(JAVA_LONG_UNALIGNED, record + 40), "first chunk");
            long chunks = 32 + 2 * 48;
            assertEquals(0, image.get(JAVA_INT_UNALIGNED, chunks));
            assertEquals(1, image.get(JAVA_INT_UNALIGNED, chunks + 4));
            assertEquals(1, image.get(JAVA_INT_UNALIGNED, chunks + 8));
        }
        assertTrue(NnKernels.ADAM_SCALARS_BYTES <= NnKernels.ADAM_SCALARS_SLOT && NnKernels.ADAM_SCALARS_SLOT % 8 == 0,
                "the records after the scalars stay 8-byte aligned");
    }

    @Test
    void adamTableChecks() {
        NnKernels.checkAdamTensors(adamTensors(1, 7, 1000));
        assertMessage("no tensors", () -> NnKernels.checkAdamTensors(List.of()));
        assertMessage("0 elements", () -> NnKernels.checkAdamTensors(
                List.of(new NnKernels.AdamPointers(A, A + MB, A + 2 * MB, A + 3 * MB, 0))));
        assertMessage("null device pointer", () -> NnKernels.checkAdamTensors(
                List.of(new NnKernels.AdamPointers(A, 0, A + 2 * MB, A + 3 * MB, 4))));

        // the second tensor's parameter is the first one's second moment
        NnKernels.AdamPointers first = new NnKernels.AdamPointers(A, A + MB, A + 2 * MB, A + 3 * MB, 100);
        assertMessage("overlaps", () -> NnKernels.checkAdamTensors(List.of(first,
                new NnKernels.AdamPointers(A + 3 * MB, A + 4 * MB, A + 5 * MB, A + 6 * MB, 100))));
        // a moment reaching one float into a gradient read by another tensor
        assertMessage("overlaps", () -> NnKernels.checkAdamTensors(List.of(first,
                new NnKernels.AdamPointers(A + 4 * MB, A + 5 * MB, A + MB - 4 * 99, A + 6 * MB, 100))));
        // a moment inside a long gradient, with a short gradient (which may overlap it) starting in between: the
        // check must remember the long one, not only the last range it saw
        assertMessage("first moment of tensor 2 overlaps the gradient of tensor 0", () -> NnKernels.checkAdamTensors(List.of(
                new NnKernels.AdamPointers(A + 9 * MB, A, A + 10 * MB, A + 11 * MB, MB / 4),
                new NnKernels.AdamPointers(A + 12 * MB, A + 8, A + 13 * MB, A + 14 * MB, 1),
                new NnKernels.AdamPointers(A + 16 * MB, A + 15 * MB, A + 64, A + 17 * MB, 1))));
        // two tensors reading the same gradient race on nothing
        NnKernels.checkAdamTensors(List.of(first, new NnKernels.AdamPointers(A + 4 * MB, A + MB, A + 5 * MB, A + 6 * MB, 100)));
        // touching ranges do not overlap
        NnKernels.checkAdamTensors(List.of(new NnKernels.AdamPointers(A, A + 400, A + 800, A + 1200, 100)));
    }

    @Test
    void adamScalarsAreTheCpuBackendsRoundedOnce() {
        float[] adam = NnKernels.adamScalars("op", 3, 1e-3, 0.9, 0.999, 1e-7, 1e-4, false);
        assertArrayEquals(new float[]{0.9f, 0.999f, 1e-7f, (float) (1e-3 / (1 - Math.pow(0.9, 3))),
                (float) (1 / Math.sqrt(1 - Math.pow(0.999, 3))), 1e-4f, 1f}, adam);
        float[] adamW = NnKernels.adamScalars("op", 1, 2e-3, 0.9, 0.99, 1e-8, 0.05, true);
        assertEquals(0f, adamW[5], "no L2 term for AdamW");
        assertEquals((float) (1 - 2e-3 * 0.05), adamW[6]);
        assertEquals(NnKernels.ADAM_SCALARS_BYTES, adam.length * Float.BYTES);
        assertMessage("step counts from 1", () -> NnKernels.adamScalars("op", 0, 1e-3, 0.9, 0.999, 1e-7, 0, false));
    }

    // ---------------------------------------------------------------- the bf16 path

    @Test
    void bf16VecNeedsEveryPointer16ByteAligned() {
        assertEquals(8, NnKernels.bf16Vec(A, A + 16, A + 4096));
        assertEquals(1, NnKernels.bf16Vec(A, A + 2));
        assertEquals(1, NnKernels.bf16Vec(A + 8));
        assertEquals(8, NnKernels.bf16Vec(), "no pointer, nothing misaligned");
    }

    /** Every c up to 3000, aligned or not: the slices cover c exactly once and at least 7/8 of a block works. */
    @Test
    void nhwcTilingCoversEveryChannelWithMostOfTheBlock() {
        for (int c = 1; c <= 3000; c++) {
            for (boolean aligned : new boolean[]{true, false}) {
                NnKernels.NhwcTiling t = NnKernels.nhwcTiling(c, aligned);
                String what = "c " + c + (aligned ? " aligned" : " unaligned") + " -> " + t;
                assertEquals(aligned && c % 8 == 0 ? 8 : 1, t.vec(), what);
                assertTrue(t.cw() >= 1 && t.cw() <= NnKernels.NHWC_MAX_SLICE_GROUPS, what);
                long width = (long) t.cw() * t.vec();
                assertTrue(t.slices() * width >= c && (t.slices() - 1) * width < c, what + ": slices cover c, none empty");
                assertTrue(8L * t.lanes() * t.cw() >= 7L * NnKernels.BLOCK, what + ": idle threads");
                assertEquals(NnKernels.BLOCK / t.cw(), t.lanes(), what);
            }
        }
        // B0's widths: one slice up to 256 channels, then near-equal slices of at most 32 groups
        assertEquals(new NnKernels.NhwcTiling(8, 18, 1), NnKernels.nhwcTiling(144, true));
        assertEquals(14, NnKernels.nhwcTiling(144, true).lanes());
        assertEquals(new NnKernels.NhwcTiling(8, 32, 5), NnKernels.nhwcTiling(1280, true));
        assertEquals(new NnKernels.NhwcTiling(8, 29, 5), NnKernels.nhwcTiling(1152, true));
        assertEquals(new NnKernels.NhwcTiling(8, 2, 1), NnKernels.nhwcTiling(16, true));
        assertEquals(new NnKernels.NhwcTiling(1, 19, 2), NnKernels.nhwcTiling(37, true));
        assertEquals(new NnKernels.NhwcTiling(1, 20, 2), NnKernels.nhwcTiling(40, false));
    }

    @Test
    void nhwcLaunchSizes() {
        NnKernels.NhwcTiling t = NnKernels.nhwcTiling(32, true); // 4 groups: 64 lanes of 4 threads
        assertEquals(64 * 8, t.elementwiseRows());
        assertEquals(256, t.blocks(256), "one block per image and slice");
        assertEquals(NnKernels.MAX_TILE_BLOCKS, t.blocks(1L << 40));
        assertEquals(1, t.blocks(0));
        assertEquals(2L * 3 * 49 * 37, NnKernels.checkNhwc("op", 3, 49, 37));
        assertEquals(0, NnKernels.checkNhwc("op", 0, 49, 37), "no images: nothing to do");
        assertMessage("sizes must be positive", () -> NnKernels.checkNhwc("op", -1, 49, 37));
        assertMessage("sizes must be positive", () -> NnKernels.checkNhwc("op", 2, 0, 37));
        assertMessage("sizes must be positive", () -> NnKernels.checkNhwc("op", 2, 49, 0));
    }

    /**
     * Batch-norm chunks at B0's extremes and on random m: at least 128 rows, at most 2048 chunks, covering m with
     * no empty chunk, and the workspace two doubles per chunk and channel plus three floats per channel.
     */
    @Test
    void batchNormChunksAndWorkspace() {
        long big = 256L * 128 * 128;
        assertEquals(2048, NnKernels.batchNormRowsPerChunk(big));
        assertEquals(2048, NnKernels.batchNormChunks(big));
        assertEquals(16L * 32 * 2048 + 12 * 32, NnKernels.batchNormWorkspaceBytes(big, 32));
        assertEquals(128, NnKernels.batchNormChunks(256L * 8 * 8));
        assertEquals(16L * 1280 * 128 + 12 * 1280, NnKernels.batchNormWorkspaceBytes(256L * 8 * 8, 1280));
        assertEquals(147, NnKernels.batchNormRowsPerChunk(300_000));
        assertEquals(2041, NnKernels.batchNormChunks(300_000));
        assertEquals(1, NnKernels.batchNormChunks(2));
        assertEquals(16 + 12, NnKernels.batchNormWorkspaceBytes(2, 1));
        assertEquals(12 * 5, NnKernels.batchNormWorkspaceBytes(0, 5), "no rows: only the coefficients");
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < 10_000; i++) {
            long m = 1 + random.nextLong(i % 2 == 0 ? 1000 : 1L << 34);
            long rows = NnKernels.batchNormRowsPerChunk(m), chunks = NnKernels.batchNormChunks(m);
            assertTrue(rows >= NnKernels.BATCH_NORM_MIN_CHUNK_ROWS && chunks >= 1 && chunks <= NnKernels.BATCH_NORM_MAX_CHUNKS, "m " + m);
            assertTrue(chunks * rows >= m && (chunks - 1) * rows < m, "m " + m + ": chunks cover the rows, none empty");
        }
        assertMessage("batchNormWorkspaceBytes", () -> NnKernels.batchNormWorkspaceBytes(10, 0));
        assertMessage("batchNormWorkspaceBytes", () -> NnKernels.batchNormWorkspaceBytes(-1, 8));
    }

    @Test
    void bf16ElementwiseChecks() {
        NnKernels.checkElementwiseBf16("siluBf16", 100, A + MB, A);
        NnKernels.checkElementwiseBf16("siluBf16", 100, A, A); // in place
        NnKernels.checkElementwiseBf16("addBf16", 100, A + 200, A, A + 200); // y is b, right after a
        NnKernels.checkElementwiseBf16("siluBf16", 0, 0, 0); // nothing to do: no pointers needed
        assertMessage("siluBf16: -1 elements", () -> NnKernels.checkElementwiseBf16("siluBf16", -1, A + MB, A));
        assertMessage("siluBf16: null device pointer", () -> NnKernels.checkElementwiseBf16("siluBf16", 10, 0, A));
        assertMessage("addBf16: null device pointer", () -> NnKernels.checkElementwiseBf16("addBf16", 10, A, A + MB, 0));
        assertMessage("partly overlaps", () -> NnKernels.checkElementwiseBf16("siluBf16", 100, A + 2, A));
        assertMessage("partly overlaps", () -> NnKernels.checkElementwiseBf16("addBf16", 100, A, A, A + 198));
    }

    @Test
    void batchNormChecks() {
        assertEquals(2L * 100 * 8, NnKernels.checkBatchNorm("op", 100, 8, 1e-5));
        assertEquals(2L * 2 * 8, NnKernels.checkBatchNormTraining("op", 2, 8, 0.1, 0));
        assertMessage("sizes must be positive", () -> NnKernels.checkBatchNorm("op", 0, 8, 1e-5));
        assertMessage("sizes must be positive", () -> NnKernels.checkBatchNorm("op", 10, 0, 1e-5));
        assertMessage("epsilon NaN", () -> NnKernels.checkBatchNorm("op", 10, 8, Double.NaN));
        assertMessage("epsilon -1.0E-5", () -> NnKernels.checkBatchNorm("op", 10, 8, -1e-5));
        assertMessage("epsilon Infinity", () -> NnKernels.checkBatchNorm("op", 10, 8, Double.POSITIVE_INFINITY));
        assertMessage("more than one value per channel", () -> NnKernels.checkBatchNormTraining("op", 1, 8, 0.1, 1e-5));
        assertMessage("momentum 1.5", () -> NnKernels.checkBatchNormTraining("op", 10, 8, 1.5, 1e-5));
        assertMessage("momentum NaN", () -> NnKernels.checkBatchNormTraining("op", 10, 8, Double.NaN, 1e-5));

        long x = A, y = A + MB, ws = A + 2 * MB;
        NnKernels.checkWorkspace("op", ws, 100, 8, x, y);
        assertMessage("null workspace", () -> NnKernels.checkWorkspace("op", 0, 100, 8, x, y));
        assertMessage("not 8-byte aligned", () -> NnKernels.checkWorkspace("op", ws + 4, 100, 8, x, y));
        assertMessage("the workspace overlaps a tensor", () -> NnKernels.checkWorkspace("op", x + 1600 - 8, 100, 8, x, y));
        assertMessage("the workspace overlaps a tensor", () -> NnKernels.checkWorkspace("op", y - 8, 100, 8, x, y));
        NnKernels.checkWorkspace("op", x + 1600, 100, 8, x, y); // right after x's 100 x 8 bf16
    }

    @Test
    void pointerChecksNameTheOpAndTheBuffers() {
        NnKernels.mayAlias("op", "x", A, A, 64);
        NnKernels.mayAlias("op", "x", A + 64, A, 64);
        assertMessage("op: the output partly overlaps x", () -> NnKernels.mayAlias("op", "x", A + 62, A, 64));
        NnKernels.disjoint("op", "ds", A + 64, 16, "dy", A, 64);
        assertMessage("op: ds overlaps dy", () -> NnKernels.disjoint("op", "ds", A + 60, 16, "dy", A, 64));
        assertMessage("op: null device pointer", () -> NnKernels.nonNull("op", A, 0, A));
    }

    @Test
    void mixedPrecisionTransposeChecks() {
        // fp32 x of 2 x 3 x 4 x 5 = 120 elements (480 bytes), bf16 y (240 bytes)
        assertEquals(120, NnKernels.checkTranspose("nchwF32ToNhwcBf16", A, 4, A + 480, 2, 2, 3, 4, 5));
        assertEquals(120, NnKernels.checkTranspose("nhwcBf16ToNchwF32", A, 2, A + 240, 4, 2, 3, 4, 5));
        assertMessage("nchwF32ToNhwcBf16: output overlaps", () -> NnKernels.checkTranspose("nchwF32ToNhwcBf16", A, 4, A + 478, 2, 2, 3, 4, 5));
        assertMessage("nhwcBf16ToNchwF32: output overlaps", () -> NnKernels.checkTranspose("nhwcBf16ToNchwF32", A, 2, A + 238, 4, 2, 3, 4, 5));
        assertMessage("sizes must be positive", () -> NnKernels.checkTranspose("nchwF32ToNhwcBf16", A, 4, A + MB, 2, 2, 0, 4, 5));
    }

    /** The NHWC kernels take B0's depthwise layers (square 3x3 and 5x5, any stride and padding) and nothing else. */
    @Test
    void nhwcDepthwiseTakesSquareThreeAndFiveFilters() {
        int[][] b0 = {{32, 3, 1, 128}, {96, 3, 2, 128}, {144, 3, 1, 64}, {144, 5, 2, 64}, {240, 5, 1, 32}, {240, 3, 2, 32},
                {480, 3, 1, 16}, {480, 5, 1, 16}, {672, 5, 1, 16}, {672, 5, 2, 16}, {1152, 5, 1, 8}, {1152, 3, 1, 8}};
        for (int[] l : b0) {
            ConvGeometry g = ConvGeometry.square(256, l[0], l[3], l[3], l[0], l[1], l[2], l[0]);
            assertTrue(NnKernels.supportsDepthwiseNhwc(g), g::toString);
        }
        assertTrue(NnKernels.supportsDepthwiseNhwc(new ConvGeometry(2, 2, 5, 5, 2, 3, 3, 1, 1, 3, 3, 2)), "padding past the filter");
        assertTrue(NnKernels.supportsDepthwiseNhwc(new ConvGeometry(2, 3, 9, 9, 3, 5, 5, 3, 1, 0, 4, 3)), "uneven strides and pads");
        assertFalse(NnKernels.supportsDepthwiseNhwc(ConvGeometry.square(2, 16, 8, 8, 16, 3, 1, 1)), "dense");
        assertFalse(NnKernels.supportsDepthwiseNhwc(ConvGeometry.square(2, 16, 8, 8, 16, 3, 1, 8)), "grouped");
        assertFalse(NnKernels.supportsDepthwiseNhwc(ConvGeometry.square(2, 16, 8, 8, 16, 7, 1, 16)), "7x7");
        assertFalse(NnKernels.supportsDepthwiseNhwc(ConvGeometry.square(2, 16, 8, 8, 16, 1, 1, 16)), "1x1");
        assertFalse(NnKernels.supportsDepthwiseNhwc(new ConvGeometry(2, 5, 11, 13, 5, 3, 5, 1, 2, 0, 2, 5)), "3x5");
        assertFalse(NnKernels.supportsDepthwiseNhwc(null));
        assertMessage("3x3 or 5x5", () -> NnKernels.depthwiseNhwcWorkspaceBytes(ConvGeometry.square(2, 16, 8, 8, 16, 7, 1, 16)));
        assertMessage("depthwiseForwardNhwc: the NHWC depthwise kernels take", () -> NnKernels.checkDepthwiseNhwc("depthwiseForwardNhwc",
                ConvGeometry.square(2, 16, 8, 8, 16, 7, 1, 16), A, 100, A + MB, 100, A + 2 * MB, 100));
        assertMessage("null device pointer", () -> NnKernels.checkDepthwiseNhwc("op", ConvGeometry.square(2, 16, 8, 8, 16, 3, 1, 16),
                A, 100, 0, 100, A + 2 * MB, 100));
        assertMessage("overlaps an input", () -> NnKernels.checkDepthwiseNhwc("op", ConvGeometry.square(2, 16, 8, 8, 16, 3, 1, 16),
                A, 100, A + MB, 100, A + 50, 100));
    }

    /**
     * The passes tile 4 (or, for the filter gradient at stride_w 2, 2) columns where their stride is compiled in;
     * nn.cu's kForwardTile, kDataTile and kFilterTile say the same, and the kernels trap on a mismatch.
     */
    @Test
    void nhwcDepthwiseTilesWhereTheStrideIsCompiledIn() {
        ConvGeometry s1 = ConvGeometry.square(2, 16, 9, 9, 16, 5, 1, 16), s2 = ConvGeometry.square(2, 16, 9, 9, 16, 3, 2, 16),
                s3 = ConvGeometry.square(2, 16, 9, 9, 16, 3, 3, 16), s31 = new ConvGeometry(2, 3, 9, 9, 3, 5, 5, 3, 1, 0, 4, 3);
        int[][] expected = {{4, 4, 4}, {4, 4, 2}, {1, 1, 1}, {4, 1, 4}}; // FORWARD, BACKWARD_DATA, BACKWARD_FILTER
        ConvGeometry[] geometries = {s1, s2, s3, s31};
        for (int i = 0; i < geometries.length; i++) {
            for (NnKernels.DepthwisePass pass : NnKernels.DepthwisePass.values()) {
                assertEquals(expected[i][pass.ordinal()], NnKernels.depthwiseNhwcTile(geometries[i], pass), geometries[i] + " " + pass);
            }
        }
        // the data gradient's tiles at stride 2 start at column -1 when pad_w is odd: 9 columns + 1 in tiles of 4
        assertEquals(2L * 9 * 3, NnKernels.depthwiseNhwcDataTiles(ConvGeometry.square(2, 16, 9, 9, 16, 3, 2, 16)), "pad 1");
        assertEquals(2L * 9 * 3, NnKernels.depthwiseNhwcDataTiles(ConvGeometry.square(2, 16, 9, 9, 16, 5, 2, 16)), "pad 2: 9 in 4s");
        assertEquals(2L * 8 * 3, NnKernels.depthwiseNhwcDataTiles(ConvGeometry.square(2, 16, 8, 8, 16, 3, 2, 16)), "pad 1: 8 + 1 in 4s");
        assertEquals(2L * 8 * 2, NnKernels.depthwiseNhwcDataTiles(ConvGeometry.square(2, 16, 8, 8, 16, 3, 1, 16)), "stride 1");
        // work items: 8 tiles a lane where that leaves 1024 blocks, fewer (down to 2) where not
        NnKernels.NhwcTiling wide = NnKernels.depthwiseNhwcTiling(672, A);  // 11 slices of 31 lanes' pairs, 8 lanes
        long stage6 = 256L * 8 * 2;  // B0's 5x5/2 forward at 16x16 -> 8x8, batch 256: 4,096 tiles
        assertEquals(8L * 4, NnKernels.depthwiseNhwcTilesPerChunk(stage6, wide), "704 blocks at 8 a lane, 1,408 at 4");
        assertEquals(8L * 8, NnKernels.depthwiseNhwcTilesPerChunk(256L * 64 * 16, wide), "plenty of blocks at 8");
        assertEquals(8L * 2, NnKernels.depthwiseNhwcTilesPerChunk(10, wide), "never under 2");
    }

    /**
     * The NHWC depthwise launches pass what nn.cu's entry points declare (ICH_DEPTHWISE_*_NHWC_ARGS), in order: a
     * device pointer or an i64 as a long, an int as an int. A wrong width would read garbage on a GPU, with no error.
     */
    @Test
    void nhwcDepthwiseArgumentsMatchTheKernelsParameters() throws java.io.IOException {
        String source = java.nio.file.Files.readString(java.nio.file.Path.of("cuda", "nn.cu"));
        ConvGeometry g = ConvGeometry.square(2, 16, 9, 9, 16, 5, 2, 16);
        NnKernels.NhwcTiling t = NnKernels.depthwiseNhwcTiling(16, A);
        for (String[] pass : new String[][]{{"ICH_DEPTHWISE_FORWARD_NHWC_ARGS", "4"}, {"ICH_DEPTHWISE_BACKWARD_DATA_NHWC_ARGS", "1"},
                {"ICH_DEPTHWISE_FILTER_SUMS_NHWC_ARGS", "2"}}) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("#define " + pass[0] + "((?:[^\\n]*\\\\\\n)*[^\\n]*)").matcher(source);
            assertTrue(m.find(), pass[0] + " in nn.cu");
            List<Class<?>> declared = new ArrayList<>();
            for (String parameter : m.group(1).replace("\\", " ").split(",")) {
                String p = parameter.strip();
                declared.add(p.contains("*") || p.startsWith("i64") ? Long.class : p.startsWith("int ") ? Integer.class : Void.class);
            }
            Object[] args = NnKernels.depthwiseNhwcArgs(g, t, A, A + MB, A + 2 * MB, Integer.parseInt(pass[1]), 64);
            assertEquals(declared, java.util.Arrays.stream(args).map(Object::getClass).toList(), pass[0]);
        }
    }

    /** Two channels a thread only when c is even and every pointer 4-byte aligned; the slices cover c. */
    @Test
    void nhwcDepthwiseTilingFollowsAlignmentAndParity() {
        assertEquals(2, NnKernels.depthwiseNhwcTiling(32, A, A + 4, A + 64).vec());
        assertEquals(1, NnKernels.depthwiseNhwcTiling(32, A, A + 2, A + 64).vec(), "a pointer 2 bytes off");
        assertEquals(1, NnKernels.depthwiseNhwcTiling(33, A, A + 4).vec(), "odd c");
        NnKernels.NhwcTiling t = NnKernels.depthwiseNhwcTiling(32, A);
        assertEquals(16, t.cw());
        assertEquals(16, t.lanes());
        assertEquals(1, t.slices());
        for (int c = 1; c <= 1300; c++) {
            for (long at : new long[]{A, A + 2}) {
                NnKernels.NhwcTiling u = NnKernels.depthwiseNhwcTiling(c, at);
                assertTrue(u.cw() <= NnKernels.NHWC_MAX_SLICE_GROUPS && u.lanes() >= 8, "c " + c);
                assertTrue((long) u.cw() * u.slices() * u.vec() >= c && (long) u.cw() * (u.slices() - 1) * u.vec() < c, "c " + c + ": slices cover c");
            }
        }
    }

    /**
     * The filter gradient's chunks (of tiles: 4 columns at stride 1): at least 32 positions a lane, at most 2048
     * chunks and 64 MB of partial sums, enough workspace for either tiling, none empty.
     */
    @Test
    void nhwcDepthwiseFilterChunksAndWorkspace() {
        ConvGeometry first = ConvGeometry.square(256, 32, 128, 128, 32, 3, 1, 32); // B0's first depthwise at 256x256
        NnKernels.NhwcTiling t = NnKernels.depthwiseNhwcTiling(32, A);
        assertEquals(256L * 128 * 32, NnKernels.depthwiseNhwcFilterTiles(first), "4 columns a tile");
        assertEquals(256L * 128 * 32 / 2048, NnKernels.depthwiseNhwcFilterRowsPerChunk(first, t), "2048 chunks");
        assertEquals(2048L * 32 * 9 * 8, NnKernels.depthwiseNhwcWorkspaceBytes(first));
        ConvGeometry last = ConvGeometry.square(256, 1152, 8, 8, 1152, 5, 1, 1152);
        NnKernels.NhwcTiling u = NnKernels.depthwiseNhwcTiling(1152, A);
        assertEquals(8L * u.lanes(), NnKernels.depthwiseNhwcFilterRowsPerChunk(last, u), "the fewest positions a lane: 8 tiles of 4");
        ConvGeometry wide = ConvGeometry.square(512, 1152, 32, 32, 1152, 5, 1, 1152);
        long rows = NnKernels.depthwiseNhwcFilterRowsPerChunk(wide, NnKernels.depthwiseNhwcTiling(1152, A));
        long chunks = Math.ceilDiv(NnKernels.depthwiseNhwcFilterTiles(wide), rows);
        assertTrue(chunks * 1152 * 25 * 8 <= NnKernels.DEPTHWISE_NHWC_MAX_PARTIAL_BYTES, "capped partial sums: " + chunks + " chunks");
        assertTrue(NnKernels.depthwiseNhwcWorkspaceBytes(wide) <= NnKernels.DEPTHWISE_NHWC_MAX_PARTIAL_BYTES);
        SplittableRandom random = new SplittableRandom(11);
        for (int i = 0; i < 2000; i++) {
            int c = 1 + random.nextInt(1300), size = 1 + random.nextInt(70), r = random.nextBoolean() ? 3 : 5;
            ConvGeometry g = ConvGeometry.square(1 + random.nextInt(64), c, size, size, c, r, 1 + random.nextInt(3), c);
            int tile = NnKernels.depthwiseNhwcTile(g, NnKernels.DepthwisePass.BACKWARD_FILTER);
            long tiles = NnKernels.depthwiseNhwcFilterTiles(g), bytes = NnKernels.depthwiseNhwcWorkspaceBytes(g);
            assertEquals((long) g.n() * g.p() * Math.ceilDiv(g.q(), tile), tiles, g::toString);
            for (long at : new long[]{A, A + 2}) {
                NnKernels.NhwcTiling v = NnKernels.depthwiseNhwcTiling(c, at);
                long perChunk = NnKernels.depthwiseNhwcFilterRowsPerChunk(g, v), n = Math.ceilDiv(tiles, perChunk);
                assertTrue(perChunk * tile >= 32L * v.lanes() && n <= NnKernels.DEPTHWISE_NHWC_MAX_CHUNKS, g::toString);
                assertTrue(n * c * r * r * 8 <= bytes, () -> g + ": the workspace holds every chunk");
                assertTrue((n - 1) * perChunk < tiles, () -> g + ": no empty chunk");
            }
        }
    }

    /** Every kernel the bf16 path launches is registered, once, with the nn.cu name the Java side uses. */
    @Test
    void bf16EntryPointsAreRegistered() {
        for (String name : List.of(NnKernels.SILU_BF16, NnKernels.SILU_BACKWARD_BF16, NnKernels.ADD_BF16,
                NnKernels.MULTIPLY_BY_MASK_BF16, NnKernels.SCALE_BF16, NnKernels.SCALE_CHANNELS_NHWC,
                NnKernels.SCALE_CHANNELS_BACKWARD_NHWC, NnKernels.GLOBAL_AVERAGE_POOL_NHWC,
                NnKernels.GLOBAL_AVERAGE_POOL_BACKWARD_NHWC, NnKernels.BATCH_NORM_STATS_NHWC,
                NnKernels.BATCH_NORM_FINISH_TRAINING_NHWC, NnKernels.BATCH_NORM_APPLY_NHWC, NnKernels.BATCH_NORM_INFERENCE_NHWC,
                NnKernels.BATCH_NORM_BACKWARD_SUMS_NHWC, NnKernels.BATCH_NORM_BACKWARD_FINISH_NHWC,
                NnKernels.BATCH_NORM_BACKWARD_APPLY_NHWC, NnKernels.NCHW_F32_TO_NHWC_BF16, NnKernels.NHWC_BF16_TO_NCHW_F32,
                NnKernels.DEPTHWISE_FORWARD_NHWC_3X3, NnKernels.DEPTHWISE_FORWARD_NHWC_5X5, NnKernels.DEPTHWISE_BACKWARD_DATA_NHWC_3X3,
                NnKernels.DEPTHWISE_BACKWARD_DATA_NHWC_5X5, NnKernels.DEPTHWISE_FILTER_SUMS_NHWC_3X3,
                NnKernels.DEPTHWISE_FILTER_SUMS_NHWC_5X5, NnKernels.DEPTHWISE_FILTER_FINISH_NHWC, NnKernels.BATCH_NORM_SILU_APPLY_NHWC,
                NnKernels.BATCH_NORM_SILU_INFERENCE_NHWC, NnKernels.BATCH_NORM_SILU_BACKWARD_SUMS_NHWC,
                NnKernels.BATCH_NORM_SILU_BACKWARD_APPLY_NHWC)) {
            assertEquals(1, NnKernels.ENTRY_POINTS.stream().filter(name::equals).count(), name);
        }
        assertEquals(NnKernels.ENTRY_POINTS.size(), NnKernels.ENTRY_POINTS.stream().distinct().count());
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), () -> "message '" + e.getMessage() + "' lacks '" + part + "'");
    }
}
