package ich.gpu;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The driver API on a real GPU: memory round trips through pinned buffers and a stream, event timing, and a
 * PTX kernel against the CPU. Skips, saying why, where {@link Gpu#probe()} finds no device.
 */
class GpuRuntimeTest extends GpuContextFixture {
    /** out[i] = in[i] + 1 for i < n; one thread per element. */
    private static final String ADD_ONE_PTX = """
            .version 8.0
            .target sm_80
            .address_size 64

            .visible .entry add_one(
                .param .u64 in,
                .param .u64 out,
                .param .u32 n
            )
            {
                .reg .pred %p<2>;
                .reg .b32 %r<6>;
                .reg .f32 %f<3>;
                .reg .b64 %rd<8>;

                ld.param.u64 %rd1, [in];
                ld.param.u64 %rd2, [out];
                ld.param.u32 %r1, [n];
                mov.u32 %r2, %ctaid.x;
                mov.u32 %r3, %ntid.x;
                mov.u32 %r4, %tid.x;
                mad.lo.s32 %r5, %r2, %r3, %r4;
                setp.ge.u32 %p1, %r5, %r1;
                @%p1 bra DONE;
                cvta.to.global.u64 %rd3, %rd1;
                cvta.to.global.u64 %rd4, %rd2;
                mul.wide.u32 %rd5, %r5, 4;
                add.s64 %rd6, %rd3, %rd5;
                add.s64 %rd7, %rd4, %rd5;
                ld.global.f32 %f1, [%rd6];
                add.rn.f32 %f2, %f1, 0f3F800000;
                st.global.f32 [%rd7], %f2;
            DONE:
                ret;
            }
            """;

    /** Per test, so each one is reported as skipped with the reason. */
    @BeforeEach
    void needsAGpu() {
        requireGpu();
    }

    /**
     * Device memory belongs to the primary context, not to the Context object that allocated it: freed late (an
     * arena that outlived its backend) while another object retains the context, it goes back to the device; after
     * the last release the driver took it with the context, and a late free must not touch an address the new
     * incarnation may have handed out again.
     */
    @Test
    void memoryOutlivingItsContextObjectIsFreedWhileTheContextLivesAndNeverAfter() {
        long bytes = 64L << 20;
        Context a = Context.open(0);
        long p = a.allocateRaw(bytes);
        long freeWithP = context.memoryInfo()[0];
        a.close();
        assertTrue(a.freeLate(p), "another Context still retains the primary context: the memory is still allocated");
        long freed = context.memoryInfo()[0] - freeWithP;
        assertTrue(freed >= bytes * 9 / 10, "freeLate gave back " + freed + " of " + bytes + " bytes");

        Context b = Context.open(0);
        long q = b.allocateRaw(bytes);
        b.close();
        assertEquals(1, Context.retains(context.device()),
                "only this class's context may be open here: another Context was left open (a leak elsewhere)");
        context.close(); // the last release: the driver frees q with the context
        context = Context.open(0);
        long r = context.allocateRaw(bytes); // may well be q's address again
        assertFalse(b.freeLate(q), "q went with the earlier incarnation of the context");
        assertTrue(context.freeLate(r), "r is still allocated: freeing it must succeed");
    }

    @Test
    void randomBytesSurviveARoundTripThroughTheDevice() {
        long bytes = (64L << 20) + 13; // odd, so nothing relies on alignment of the length
        long seed = System.nanoTime();
        try (PinnedBuffer in = context.allocatePinned(bytes);
             PinnedBuffer out = context.allocatePinned(bytes);
             DeviceBuffer device = context.allocate(bytes);
             Stream stream = context.createStream();
             Event start = context.createEvent();
             Event copiedIn = context.createEvent();
             Event copiedOut = context.createEvent()) {
            fillRandom(in.segment(), seed);
            out.segment().fill((byte) 0x5A);
            device.fill((byte) 0xA5);

            stream.record(start);
            stream.copyToDevice(in, 0, device, 0, bytes);
            stream.record(copiedIn);
            stream.copyToHost(device, 0, out, 0, bytes);
            stream.record(copiedOut);
            stream.synchronize();
            copiedOut.synchronize();

            assertEquals(-1, in.segment().mismatch(out.segment()), "round trip differs (seed " + seed + ")");
            float up = copiedIn.millisSince(start);
            float down = copiedOut.millisSince(copiedIn);
            assertTrue(up > 0 && down > 0, up + " ms, " + down + " ms");
            System.out.printf("GpuRuntimeTest: %d MiB host to device %.2f ms (%.1f GB/s), device to host %.2f ms (%.1f GB/s)%n",
                    bytes >> 20, up, bytes / up / 1e6, down, bytes / down / 1e6);

            // A partial copy at offsets lands where it should.
            out.segment().fill((byte) 0x5A);
            stream.copyToHost(device, 1001, out, 7, 4096);
            stream.synchronize();
            assertEquals(-1, in.segment().asSlice(1001, 4096).mismatch(out.segment().asSlice(7, 4096)));
            assertEquals((byte) 0x5A, out.segment().get(JAVA_BYTE, 6));
            assertEquals((byte) 0x5A, out.segment().get(JAVA_BYTE, 7 + 4096));
        }
    }

    @Test
    void deviceCopiesOnASecondStreamWaitForTheFirstStreamsEvent() {
        long bytes = (16L << 20) + 5;
        long seed = System.nanoTime();
        try (PinnedBuffer in = context.allocatePinned(bytes);
             PinnedBuffer out = context.allocatePinned(bytes);
             DeviceBuffer a = context.allocate(bytes);
             DeviceBuffer b = context.allocate(bytes + 100);
             Stream copy = context.createStream();
             Stream compute = context.createStream();
             Event copied = context.createEvent()) {
            fillRandom(in.segment(), seed);
            out.segment().fill((byte) 0x5A);
            b.fill((byte) 0xA5);
            // The upload runs on one stream; the device-to-device copy on another that waits for it by event.
            copy.copyToDevice(in, 0, a, 0, bytes);
            copy.record(copied);
            compute.waitFor(copied);
            compute.copyOnDevice(a, 0, b, 100, bytes);
            compute.copyToHost(b, 100, out, 0, bytes);
            compute.synchronize();
            assertEquals(-1, in.segment().mismatch(out.segment()), "device-to-device copy differs (seed " + seed + ")");
            compute.copyToHost(b, 0, out, 0, 100);
            compute.synchronize();
            for (int i = 0; i < 100; i++) assertEquals((byte) 0xA5, out.segment().get(JAVA_BYTE, i), "byte " + i + " before the offset");
            assertThrows(IndexOutOfBoundsException.class, () -> compute.copyOnDevice(a, 1, b, 0, bytes));
        }
    }

    @Test
    void aPtxKernelAddsOneToEachFloatAsTheCpuDoes() {
        int n = (1 << 20) + 7;
        int guard = 64;
        long seed = System.nanoTime();
        SplittableRandom random = new SplittableRandom(seed);
        try (Module module = context.loadModule(ADD_ONE_PTX.getBytes(StandardCharsets.US_ASCII));
             PinnedBuffer host = context.allocatePinned((long) (n + guard) * Float.BYTES);
             DeviceBuffer in = context.allocate((long) n * Float.BYTES);
             DeviceBuffer out = context.allocate((long) (n + guard) * Float.BYTES);
             Stream stream = context.createStream();
             Event start = context.createEvent();
             Event end = context.createEvent()) {
            MemorySegment h = host.segment();
            float[] expected = new float[n];
            for (int i = 0; i < n; i++) {
                float x = (float) ((random.nextDouble() - 0.5) * 2000);
                h.setAtIndex(JAVA_FLOAT, i, x);
                expected[i] = x + 1f;
            }
            out.fill((byte) 0xFF); // a NaN pattern: any element the kernel misses stays NaN
            stream.copyToDevice(host, 0, in, 0, (long) n * Float.BYTES);
            stream.synchronize(); // the copy reads the pinned buffer when it runs: poison it only after that
            h.fill((byte) 0x5A);

            Module.Kernel addOne = module.kernel("add_one");
            stream.record(start);
            stream.launch(addOne, Stream.Dim3.of((n + 255) / 256), Stream.Dim3.of(256), 0, in, out, n);
            stream.record(end);
            stream.copyToHost(out, 0, host, 0, (long) (n + guard) * Float.BYTES);
            stream.synchronize();

            for (int i = 0; i < n; i++) {
                float got = h.getAtIndex(JAVA_FLOAT, i);
                if (Float.floatToRawIntBits(got) != Float.floatToRawIntBits(expected[i])) {
                    throw new AssertionError("element " + i + ": GPU " + got + ", CPU " + expected[i] + " (seed " + seed + ")");
                }
            }
            for (int i = n; i < n + guard; i++) {
                assertEquals(-1, h.getAtIndex(JAVA_INT, i), "kernel wrote past n at " + i);
            }
            System.out.printf("GpuRuntimeTest: add_one over %d floats %.3f ms%n", n, end.millisSince(start));
        }
    }

    /**
     * What a GPU loader does during a training step: while this thread captures a CUDA graph on one stream, another
     * thread copies on its own stream, records an event and waits for it and for its stream. The other thread's work
     * runs at once and stays out of the graph, the capture stays valid, and the graph then does what was captured.
     * (With blocking streams the other thread's event wait failed on an H200: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED.)
     */
    @Test
    void anotherThreadWaitsOnItsOwnStreamWhileThisThreadCaptures() throws Exception {
        int n = 4096 + 3;
        long bytes = (long) n * Float.BYTES;
        long seed = System.nanoTime();
        try (Module module = context.loadModule(ADD_ONE_PTX.getBytes(StandardCharsets.US_ASCII));
             PinnedBuffer host = context.allocatePinned(bytes);
             PinnedBuffer otherIn = context.allocatePinned(bytes);
             PinnedBuffer otherOut = context.allocatePinned(bytes);
             DeviceBuffer in = context.allocate(bytes);
             DeviceBuffer out = context.allocate(bytes);
             DeviceBuffer otherDevice = context.allocate(bytes);
             Stream captured = context.createStream();
             Stream other = context.createStream();
             Event otherCopied = context.createEvent()) {
            SplittableRandom random = new SplittableRandom(seed);
            float[] x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = (float) ((random.nextDouble() - 0.5) * 1000);
                host.segment().setAtIndex(JAVA_FLOAT, i, x[i]);
            }
            fillRandom(otherIn.segment(), seed + 1);
            otherOut.segment().fill((byte) 0x5A);
            captured.copyToDevice(host, 0, in, 0, bytes);
            // one eager launch first, as a training step's warm-up does: with lazy module loading a kernel's first
            // launch loads it, which a capture must not have to do
            Module.Kernel addOne = module.kernel("add_one");
            captured.launch(addOne, Stream.Dim3.of((n + 255) / 256), Stream.Dim3.of(256), 0, in, out, n);
            captured.synchronize();
            out.fill((byte) 0xFF);

            Throwable[] otherFailed = new Throwable[1];
            captured.beginCapture();
            Graph graph;
            try {
                captured.launch(addOne, Stream.Dim3.of((n + 255) / 256), Stream.Dim3.of(256), 0, in, out, n);
                Thread t = Thread.ofPlatform().start(() -> {
                    try {
                        context.makeCurrent();
                        other.copyToDevice(otherIn, 0, otherDevice, 0, bytes);
                        other.record(otherCopied);
                        otherCopied.synchronize();
                        other.copyToHost(otherDevice, 0, otherOut, 0, bytes);
                        other.synchronize();
                    } catch (Throwable e) {
                        otherFailed[0] = e;
                    }
                });
                t.join();
            } finally {
                graph = captured.endCapture();
            }
            try (graph) {
                if (otherFailed[0] != null) throw new AssertionError("the other thread failed during the capture: " + otherFailed[0], otherFailed[0]);
                assertEquals(-1, otherIn.segment().mismatch(otherOut.segment()), "the other thread's round trip (seed " + seed + ")");
                graph.launch(captured);
                captured.copyToHost(out, 0, host, 0, bytes);
                captured.synchronize();
                for (int i = 0; i < n; i++) {
                    assertEquals(Float.floatToRawIntBits(x[i] + 1f), Float.floatToRawIntBits(host.segment().getAtIndex(JAVA_FLOAT, i)),
                            "element " + i + " of the replayed graph (seed " + seed + ")");
                }
            }
        }
    }

    @Test
    void badPtxFailsWithTheJitLog() {
        String bad = ".version 8.0\n.target sm_80\n.address_size 64\n.visible .entry broken() { no_such_instruction; }\n";
        CudaException e = assertThrows(CudaException.class,
                () -> context.loadModule(bad.getBytes(StandardCharsets.US_ASCII)).close());
        assertEquals("cuModuleLoadDataEx", e.function());
        assertTrue(e.name().startsWith("CUDA_ERROR_"), e.getMessage());
        assertTrue(e.getMessage().contains("JIT error log"), e.getMessage());
    }

    @Test
    void closingTwiceIsSafeAndUseAfterCloseIsRefused() {
        DeviceBuffer b = context.allocate(1024);
        b.close();
        b.close();
        assertTrue(b.isClosed());
        assertThrows(IllegalStateException.class, b::pointer);
        Stream s = context.createStream();
        s.close();
        s.close();
        assertThrows(IllegalStateException.class, s::synchronize);
    }

    @Test
    void nvmlSeesTheDevice() {
        try (Nvml nvml = Nvml.open()) {
            assertTrue(nvml.deviceCount() >= 1);
            Nvml.Memory m = nvml.memory(0);
            assertTrue(m.total() > 0 && m.used() <= m.total(), m.toString());
            Nvml.Utilization u = nvml.utilization(0);
            assertTrue(u.gpu() >= 0 && u.gpu() <= 100 && u.memory() >= 0 && u.memory() <= 100, u.toString());
            assertTrue(!nvml.deviceName(0).isBlank() && !nvml.driverVersion().isBlank());
        }
    }

    private static void fillRandom(MemorySegment s, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        long n = s.byteSize();
        long i = 0;
        for (; i + 8 <= n; i += 8) s.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i, random.nextLong());
        for (; i < n; i++) s.set(JAVA_BYTE, i, (byte) random.nextInt());
    }
}
