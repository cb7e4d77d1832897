package ich.gpu;

import ich.dicom.DicomFile;
import ich.dicom.ImageHeader;
import ich.hu.HounsfieldTransform;
import ich.preprocess.Augmentation;
import ich.preprocess.Preprocessor;
import ich.preprocess.SliceKernel;
import ich.preprocess.Window;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The host side of the fused preprocessing kernel (cuda/preprocess.cu): the GPU counterpart of
 * {@link Preprocessor}, with the same {@link Preprocessor.Config} and the same crop boxes and flips (drawn from
 * {@link Augmentation#sample} for (seed, epoch, sample key)), so both paths give the same tensor; in fp32
 * bit for bit except where a sigmoid window's double {@code exp} rounds differently (see the .cu file).
 *
 * <p><b>CPU fallback.</b> The kernel reads 16-bit words and applies Rescale Slope/Intercept (with the RSNA
 * 12-bit fix). An image with another Bits Allocated, a Modality LUT, or a padding mask
 * ({@link HounsfieldTransform.Options#withPaddingMasked}) is preprocessed by {@link SliceKernel} on the host
 * instead, converted to the output precision and copied into its slot of the device output after the kernel,
 * so the caller sees one complete batch either way; {@link Batch#cpuImages()} lists them with the reason.
 *
 * <p><b>Double buffering.</b> Two slots, each with a pinned staging buffer, a device input buffer and a device
 * output buffer, used in turn by successive {@link #submit} calls; host-to-device copies run on a copy stream,
 * kernels on a compute stream that waits for its batch's copy (an event). So the copy of batch i + 1 overlaps
 * the kernel of batch i, and the host stages batch i + 2 meanwhile. A batch's output therefore stays valid until
 * the second {@code submit} after it; reading it later is an {@link IllegalStateException}, not stale data.
 *
 * <p>Not thread-safe: one thread at a time submits (the context is made current on it at each call); another may
 * read a batch that a lock or queue handed over to it, as ich.train.GpuBatchLoader does. Everything native is
 * freed by {@link #close()}; the {@link Context} stays the caller's.
 */
public final class GpuPreprocessor implements AutoCloseable {
    /** Output element type; its kernels are {@code ich_preprocess_<name>_<layout>}. */
    public enum Precision {
        FP32(4, "f32"), FP16(2, "f16"), BF16(2, "bf16");

        public final int bytes;
        final String kernelName;

        Precision(int bytes, String kernelName) {
            this.bytes = bytes;
            this.kernelName = kernelName;
        }

        /** The kernel entry point for this precision and layout, e.g. {@code ich_preprocess_f16_nhwc}. */
        public String entryPoint(SliceKernel.Layout layout) {
            return "ich_preprocess_" + kernelName + "_" + (layout == SliceKernel.Layout.NCHW ? "nchw" : "nhwc");
        }

        /** The linear kernel's entry point ({@link PreprocessPlan#linearKernel}), e.g. {@code ich_preprocess_f16_nhwc_linear}. */
        public String linearEntryPoint(SliceKernel.Layout layout) {
            return entryPoint(layout) + "_linear";
        }

        /** Element {@code i} of {@code data} in this precision, as a float. */
        public float get(MemorySegment data, long i) {
            return switch (this) {
                case FP32 -> data.getAtIndex(F32, i);
                case FP16 -> Float.float16ToFloat(data.getAtIndex(I16, i));
                case BF16 -> Float.intBitsToFloat(data.getAtIndex(I16, i) << 16);
            };
        }

        /** Writes {@code v} rounded to this precision (to nearest, ties to even: as __float2half_rn, __float2bfloat16_rn). */
        public void set(MemorySegment data, long i, float v) {
            switch (this) {
                case FP32 -> data.setAtIndex(F32, i, v);
                case FP16 -> data.setAtIndex(I16, i, Float.floatToFloat16(v));
                case BF16 -> data.setAtIndex(I16, i, toBfloat16(v));
            }
        }

        static short toBfloat16(float v) {
            int bits = Float.floatToRawIntBits(v);
            if (Float.isNaN(v)) return (short) ((bits >>> 16) | 0x0040); // stays a (quiet) NaN
            bits += 0x7FFF + ((bits >>> 16) & 1);
            return (short) (bits >>> 16);
        }
    }

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * One slice to preprocess: a frame's stored pixel words (native little-endian layout, as
     * {@code PixelData.frame} gives them), its HU transform and window channels, and the key its random crop
     * and flip derive from. The pixels are copied during {@link #submit}; the caller may reuse them afterwards.
     */
    public record Slice(MemorySegment pixels, int rows, int columns, HounsfieldTransform hu, Window[] windows, long sampleKey) {
        public Slice {
            if (rows < 1 || columns < 1) throw new IllegalArgumentException("empty slice " + columns + " x " + rows);
            long need = (long) rows * columns * (hu.bitsAllocated() / 8);
            if (pixels.byteSize() < need) {
                throw new IllegalArgumentException("slice of " + columns + " x " + rows + " at " + hu.bitsAllocated()
                        + " bits needs " + need + " bytes of pixels, got " + pixels.byteSize());
            }
        }

        /**
         * Reads frame {@code frame} of a file as {@link Preprocessor#process} does ({@link Preprocessor#frameSetup}:
         * same HU options, same window resolution, same errors), with the pixels copied into {@code arena}.
         */
        public static Slice read(Path file, int frame, long sampleKey, Preprocessor.Config config, Arena arena) throws IOException {
            try (DicomFile f = DicomFile.read(file, DicomFile.ReadBuffer.ofCurrentThread())) {
                ImageHeader h = f.header();
                Preprocessor.FrameSetup setup = Preprocessor.frameSetup(file, h, frame, config);
                MemorySegment src = f.pixelData().frame(frame);
                MemorySegment copy = arena.allocate(src.byteSize(), 64).copyFrom(src);
                return new Slice(copy, h.rows(), h.columns(), setup.hu(), setup.windows(), sampleKey);
            }
        }
    }

    /** An image of a batch that the CPU preprocessed, and why. */
    public record CpuImage(int index, String reason) {}

    private final Context context;
    private final Preprocessor.Config config;
    private final Precision precision;
    private final int maxBatch;
    private final long sampleElements, sampleBytes;
    private final Module module;
    private final Module.Kernel kernel, linearKernel;
    private final Stream copyStream, computeStream;
    private final Slot[] slots = new Slot[2];
    private static final int TYPICAL_MATRIX = 512;
    private final SliceKernel.Scratch scratch = new SliceKernel.Scratch();
    // Shared, not confined: a loader opens the preprocessor on one thread and submits from its staging thread.
    private final Arena arena = Arena.ofShared();
    private final MemorySegment batchStruct = arena.allocate(PreprocessStructs.BATCH_BYTES, 16);
    private final MemorySegment cpuFloats;
    private final List<AutoCloseable> owned = new ArrayList<>();
    private long submitted;
    private boolean closed;

    /**
     * Loads the kernels into {@code context} and allocates two slots for batches of up to {@code maxBatch}
     * slices.
     *
     * @throws GpuUnavailableException when the jar has no kernels ({@link Kernels#NOT_BUILT})
     * @throws CudaException           when the driver refuses (out of memory, no kernel image for this GPU, ...)
     */
    public static GpuPreprocessor open(Context context, Preprocessor.Config config, Precision precision, int maxBatch) {
        byte[] fatbin = Kernels.preprocessFatbin().orElseThrow(() -> new GpuUnavailableException(Kernels.NOT_BUILT));
        return new GpuPreprocessor(context, config, precision, maxBatch, fatbin);
    }

    private GpuPreprocessor(Context context, Preprocessor.Config config, Precision precision, int maxBatch, byte[] fatbin) {
        if (maxBatch < 1 || maxBatch > 65_535) throw new IllegalArgumentException("batch size must be 1 to 65535 (grid z), got " + maxBatch);
        if (config.channelCount() > PreprocessStructs.MAX_CHANNELS) {
            throw new IllegalArgumentException("the kernel takes at most " + PreprocessStructs.MAX_CHANNELS + " channels, the config has " + config.channelCount());
        }
        this.context = context;
        this.config = config;
        this.precision = precision;
        this.maxBatch = maxBatch;
        this.sampleElements = config.sampleFloats();
        this.sampleBytes = sampleElements * precision.bytes;
        this.cpuFloats = arena.allocate(4 * sampleElements, 64);
        try {
            context.makeCurrent();
            module = own(context.loadModule(fatbin));
            kernel = module.kernel(precision.entryPoint(config.layout()));
            linearKernel = module.kernel(precision.linearEntryPoint(config.layout()));
            copyStream = own(context.createStream());
            computeStream = own(context.createStream());
            // Sized for full batches of 512 x 512 slices (the CT matrix of nearly every scanner), so a loader's
            // staging thread seldom has to grow them (see Slot.pinned).
            long typical = PreprocessPlan.stagingBytes(maxBatch, TYPICAL_MATRIX, TYPICAL_MATRIX);
            for (int s = 0; s < slots.length; s++) {
                slots[s] = new Slot();
                slots[s].staging = slots[s].pinned(null, typical);
                slots[s].ensureInput(typical);
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private <T extends AutoCloseable> T own(T resource) {
        owned.add(resource);
        return resource;
    }

    /** Buffers and events of one of the two batches in flight. */
    private final class Slot {
        PinnedBuffer staging, cpuStaging, download;
        DeviceBuffer input;
        final DeviceBuffer output = own(context.allocate(maxBatch * sampleBytes));
        final Event copyStart = own(context.createEvent()), copyDone = own(context.createEvent()),
                kernelStart = own(context.createEvent()), kernelDone = own(context.createEvent()), done = own(context.createEvent());
        long generation = -1;
        /** The last generation whose completion a {@link Batch#await} saw: no need to ask the driver again. */
        volatile long awaited = -1;

        /**
         * Waits until the slot's last batch has finished on the device, so its buffers may be rewritten. A batch
         * its consumer already awaited needs no driver call: a loader's staging thread then never waits on the
         * device while the training thread captures a CUDA graph (a host wait from another thread during a capture
         * failed on a GPU with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED).
         */
        void idle() {
            if (generation >= 0 && awaited != generation) done.synchronize();
        }

        // Outgrown buffers are kept until close, not freed: the staging thread of a loader grows them, and a free
        // can wait for the whole device while the training thread captures. Growth is rare (CT slices are mostly
        // 512 x 512, and open() sizes the slots for those), so what is kept is small.
        PinnedBuffer pinned(PinnedBuffer old, long bytes) {
            if (old != null && old.size() >= bytes) return old;
            return own(context.allocatePinned(Math.max(bytes, old == null ? 0 : old.size() + old.size() / 4)));
        }

        void ensureInput(long bytes) {
            if (input != null && input.size() >= bytes) return;
            input = own(context.allocate(Math.max(bytes, input == null ? 0 : input.size() + input.size() / 4)));
        }
    }

    public Preprocessor.Config config() { return config; }

    public Precision precision() { return precision; }

    public int maxBatch() { return maxBatch; }

    /** Bytes of one sample in the output. */
    public long sampleBytes() { return sampleBytes; }

    /**
     * Fills both slots' device outputs with 0xFF bytes, a NaN in all three precisions, so that a test sees any
     * element the next batches leave unwritten. Waits for the slots' work first.
     */
    public void poisonOutputs() {
        checkOpen();
        context.makeCurrent();
        for (Slot s : slots) {
            s.idle();
            s.output.fill((byte) 0xFF);
        }
    }

    /**
     * Stages the slices, queues their copy to the device and the kernel, and returns without waiting for
     * either. Blocks only while the slot it needs is still busy with the batch submitted two calls earlier.
     */
    public Batch submit(List<Slice> slices, long seed, int epoch) {
        checkOpen();
        if (slices.isEmpty() || slices.size() > maxBatch) {
            throw new IllegalArgumentException("a batch holds 1 to " + maxBatch + " slices, got " + slices.size());
        }
        context.makeCurrent();
        PreprocessPlan plan = PreprocessPlan.of(slices, config, seed, epoch);
        Slot slot = slots[(int) (submitted % slots.length)];
        slot.idle();
        long generation = submitted++;
        slot.generation = generation;

        slot.staging = slot.pinned(slot.staging, plan.stagingBytes);
        slot.ensureInput(plan.stagingBytes);
        MemorySegment staging = slot.staging.segment();
        long inputBase = slot.input.pointer();
        List<CpuImage> cpuImages = new ArrayList<>();
        for (PreprocessPlan.Image im : plan.images) {
            if (!im.onGpu()) continue;
            var p = im.params();
            var withPointer = new PreprocessStructs.ImageParams(inputBase + im.pixelOffset(), p.rows(), p.columns(), p.bitsAllocated(),
                    p.shiftLeft(), p.shiftRight(), p.signed(), p.rsnaFix(), p.flip(), p.slope(), p.intercept(), p.boxX(), p.boxY(),
                    p.stepX(), p.stepY());
            PreprocessStructs.writeImage(staging, (long) im.index() * PreprocessStructs.IMAGE_BYTES, withPointer);
        }
        stagePixels(plan, slices, staging);
        int cpu = plan.cpuCount();
        if (cpu > 0) {
            slot.cpuStaging = slot.pinned(slot.cpuStaging, cpu * sampleBytes);
            MemorySegment dst = slot.cpuStaging.segment();
            long k = 0;
            for (PreprocessPlan.Image im : plan.images) {
                if (im.onGpu()) continue;
                Slice s = slices.get(im.index());
                SliceKernel.run(s.pixels(), s.rows(), s.columns(), s.hu(), s.windows(), im.sample().box(), im.sample().flip(),
                        config.size(), config.size(), config.normalization(), config.layout(), cpuFloats, 0, scratch);
                for (long e = 0; e < sampleElements; e++) precision.set(dst, k * sampleElements + e, cpuFloats.getAtIndex(F32, e));
                cpuImages.add(new CpuImage(im.index(), im.cpuReason()));
                k++;
            }
        }

        copyStream.record(slot.copyStart);
        copyStream.copyToDevice(slot.staging, 0, slot.input, 0, plan.stagingBytes);
        copyStream.record(slot.copyDone);

        computeStream.waitFor(slot.copyDone);
        computeStream.record(slot.kernelStart);
        long outBase = slot.output.pointer();
        Stream.Dim3 block = new Stream.Dim3(Kernels.BLOCK_X, Kernels.BLOCK_Y, 1);
        for (PreprocessPlan.Launch l : plan.launches) {
            PreprocessStructs.writeBatch(batchStruct, l.windows(), config.size(), config.size(), config.normalization());
            // The linear kernel's threads do Kernels.LINEAR_ROWS rows each.
            int rowsPerBlock = Kernels.BLOCK_Y * (l.linear() ? Kernels.LINEAR_ROWS : 1);
            Stream.Dim3 grid = new Stream.Dim3(ceilDiv(config.size(), Kernels.BLOCK_X), ceilDiv(config.size(), rowsPerBlock), l.count());
            computeStream.launch(l.linear() ? linearKernel : kernel, grid, block, 0, inputBase + (long) l.start() * PreprocessStructs.IMAGE_BYTES, batchStruct,
                    outBase + l.start() * sampleBytes);
        }
        computeStream.record(slot.kernelDone);
        // Stream order puts the CPU results after the kernels: nothing can overwrite them.
        for (int k = 0; k < cpuImages.size(); k++) {
            computeStream.copyToDevice(slot.cpuStaging, k * sampleBytes, slot.output, cpuImages.get(k).index() * sampleBytes, sampleBytes);
        }
        computeStream.record(slot.done);
        return new Batch(slot, generation, slices.size(), plan.launches.size(), List.copyOf(cpuImages), kernelBytes(plan, slices), plan.stagingBytes);
    }

    /** Batches with at least this many pixel bytes are copied into staging by several threads (see {@link #stagePixels}). */
    private static final long PARALLEL_STAGING_BYTES = 16L << 20;
    /** A thread that owns nothing: a segment it may access is one any thread may (shared, global or automatic). */
    private static final Thread ANY_THREAD = Thread.ofPlatform().unstarted(() -> {});

    /**
     * Copies the kernel images' pixels into the staging buffer. One thread copied a batch of 256 slices of 512 x 512
     * (128 MiB) in 26 ms on the H200's host (bench preprocess, "GPU including host staging"): the end-to-end row's
     * bound. Large batches are copied by the common pool's threads, when every slice's memory may be read from any
     * thread (a confined arena's may not; the staging buffer's may).
     */
    private static void stagePixels(PreprocessPlan plan, List<Slice> slices, MemorySegment staging) {
        List<PreprocessPlan.Image> images = plan.images.stream().filter(PreprocessPlan.Image::onGpu).toList();
        long bytes = images.stream().mapToLong(PreprocessPlan.Image::pixelBytes).sum();
        boolean shared = images.stream().allMatch(im -> slices.get(im.index()).pixels().isAccessibleBy(ANY_THREAD));
        java.util.stream.Stream<PreprocessPlan.Image> each = images.stream();
        if (bytes >= PARALLEL_STAGING_BYTES && shared) each = each.parallel();
        each.forEach(im -> MemorySegment.copy(slices.get(im.index()).pixels(), 0, staging, im.pixelOffset(), im.pixelBytes()));
    }

    /** {@link #submit} and wait for the result. */
    public Batch run(List<Slice> slices, long seed, int epoch) {
        Batch b = submit(slices, seed, epoch);
        b.await();
        return b;
    }

    /**
     * DRAM bytes the kernel must move: the source words inside each crop box (read once through the cache,
     * whatever the 2 x 2 neighbourhoods share), plus every output element written.
     */
    private long kernelBytes(PreprocessPlan plan, List<Slice> slices) {
        long bytes = 0;
        for (PreprocessPlan.Image im : plan.images) {
            if (!im.onGpu()) continue;
            var box = im.sample().box();
            Slice s = slices.get(im.index());
            long w = Math.min(s.columns(), (long) Math.ceil(box.width()) + 1), h = Math.min(s.rows(), (long) Math.ceil(box.height()) + 1);
            bytes += 2 * w * h + sampleBytes;
        }
        return bytes;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    /** A submitted batch: its timings and output, readable until the second {@link #submit} after it. */
    public final class Batch {
        private final Slot slot;
        private final long generation;
        private final int n, launches;
        private final List<CpuImage> cpuImages;
        private final long kernelBytes, stagedBytes;

        private Batch(Slot slot, long generation, int n, int launches, List<CpuImage> cpuImages, long kernelBytes, long stagedBytes) {
            this.slot = slot;
            this.generation = generation;
            this.n = n;
            this.launches = launches;
            this.cpuImages = cpuImages;
            this.kernelBytes = kernelBytes;
            this.stagedBytes = stagedBytes;
        }

        private Slot slot() {
            checkOpen();
            if (slot.generation != generation) {
                throw new IllegalStateException("batch " + generation + " was overwritten by batch " + slot.generation
                        + ": read a batch before submitting two more");
            }
            context.makeCurrent();
            return slot;
        }

        public int size() { return n; }

        /** Kernel launches this batch took (one per run of equal windows). */
        public int launches() { return launches; }

        /** Images done on the CPU (see the class comment), by index. */
        public List<CpuImage> cpuImages() { return cpuImages; }

        /** Bytes the kernel read and wrote in DRAM (crop box source words + output), for bandwidth figures. */
        public long kernelBytes() { return kernelBytes; }

        /** Bytes copied host to device: the image structs and the stored pixels. */
        public long stagedBytes() { return stagedBytes; }

        /** Waits until the batch is complete on the device. */
        public void await() {
            Slot s = slot();
            s.done.synchronize();
            s.awaited = generation;
        }

        /** Kernel time, by events around the launches (waits for the batch). */
        public float kernelMillis() {
            await();
            return slot.kernelDone.millisSince(slot.kernelStart);
        }

        /** Host-to-device copy time, by events (waits for the batch). */
        public float copyMillis() {
            await();
            return slot.copyDone.millisSince(slot.copyStart);
        }

        /** The device output: {@code size() * sampleBytes()} bytes, NCHW or NHWC per the config. */
        public DeviceBuffer output() { return slot().output; }

        /** Copies the output ({@code size() * sampleBytes()} bytes) into {@code dst} at byte {@code offset}. */
        public void copyTo(MemorySegment dst, long offset) {
            Slot s = slot();
            long bytes = n * sampleBytes;
            s.download = s.pinned(s.download, bytes);
            copyStream.waitFor(s.done);
            copyStream.copyToHost(s.output, 0, s.download, 0, bytes);
            copyStream.synchronize();
            MemorySegment.copy(s.download.segment(), 0, dst, offset, bytes);
        }

        /** Element (sample, channel, y, x) as a float, after {@link #copyTo} into {@code host} at offset 0. */
        public float get(MemorySegment host, int sample, int channel, int y, int x) {
            int c = config.channelCount(), h = config.size(), w = config.size();
            long i = config.layout() == SliceKernel.Layout.NCHW ? (((long) sample * c + channel) * h + y) * w + x
                    : (((long) sample * h + y) * w + x) * c + channel;
            return precision.get(host, i);
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("GpuPreprocessor is closed");
    }

    /** Waits for the work in flight, then frees every buffer, event, stream and the module (newest first). */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        RuntimeException failure = null;
        try {
            context.makeCurrent();
            for (Slot s : slots) if (s != null) s.idle();
        } catch (RuntimeException e) {
            failure = e;
        }
        failure = Closing.closeEach(failure, owned.reversed());
        owned.clear();
        arena.close();
        if (failure != null) throw failure;
    }
}
