package ich.gpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/** A loaded module (PTX JIT-compiled by the driver, or a cubin); unloaded on close. */
public final class Module extends NativeResource {
    private static final int LOG_BYTES = 16 * 1024;

    private final MemorySegment handle;
    private final String infoLog;

    private Module(Cuda cuda, MemorySegment handle, String infoLog) {
        super(cuda);
        this.handle = handle;
        this.infoLog = infoLog;
    }

    /** Loads the image; a failure carries the JIT error log in its message. */
    static Module load(Cuda cuda, byte[] image) {
        try (Arena arena = Arena.ofConfined()) {
            // PTX must be NUL-terminated; a binary image does not mind the extra byte.
            MemorySegment data = arena.allocate(image.length + 1L, 8);
            MemorySegment.copy(image, 0, data, JAVA_BYTE, 0, image.length);
            MemorySegment infoLog = arena.allocate(LOG_BYTES);
            MemorySegment errorLog = arena.allocate(LOG_BYTES);
            int[] options = {Cuda.JIT_INFO_LOG_BUFFER, Cuda.JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                    Cuda.JIT_ERROR_LOG_BUFFER, Cuda.JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
            MemorySegment optionSeg = arena.allocateFrom(JAVA_INT, options);
            // Values are pointer-sized slots: a buffer's address, or a size stored as an integer in the slot.
            MemorySegment values = arena.allocate(ADDRESS, options.length);
            values.setAtIndex(ADDRESS, 0, infoLog);
            values.setAtIndex(JAVA_LONG, 1, LOG_BYTES);
            values.setAtIndex(ADDRESS, 2, errorLog);
            values.setAtIndex(JAVA_LONG, 3, LOG_BYTES);
            MemorySegment out = arena.allocate(ADDRESS);
            int status = cuda.call(cuda.cuModuleLoadDataEx, out, data, options.length, optionSeg, values);
            if (status != 0) throw cuda.error(status, "cuModuleLoadDataEx", "JIT error log:\n" + errorLog.getString(0));
            return new Module(cuda, out.get(ADDRESS, 0), infoLog.getString(0));
        }
    }

    /** What the JIT compiler reported on success (often empty). */
    public String infoLog() {
        return infoLog;
    }

    /** The kernel of that (unmangled, {@code .entry}) name; valid while the module is open. */
    public Kernel kernel(String name) {
        checkOpen();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment f = cuda.handleOut(cuda.cuModuleGetFunction, "cuModuleGetFunction(" + name + ")",
                    handle, arena.allocateFrom(name));
            return new Kernel(this, name, f);
        }
    }

    @Override
    void release() {
        cuda.check(cuda.call(cuda.cuModuleUnload, handle), "cuModuleUnload");
    }

    /** A kernel of an open module. */
    public record Kernel(Module module, String name, MemorySegment handle) {
        /**
         * Launches with {@code cuLaunchKernel}. Arguments are boxed by their C type: {@link DeviceBuffer} and
         * {@link Long} as 64-bit values (pointers, {@code long long}), {@link Integer} as 32-bit, {@link Float},
         * {@link Double}, and a {@link MemorySegment} as a struct passed by value (its bytes, laid out as the
         * kernel's struct; copied here, so the caller may reuse it at once). The values and the array of pointers to them live in an arena for the call: the
         * driver copies them at launch.
         */
        void launch(MemorySegment stream, Stream.Dim3 grid, Stream.Dim3 block, int sharedBytes, Object... args) {
            module.checkOpen();
            Cuda cuda = module.cuda;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment params = arena.allocate(ADDRESS, Math.max(1, args.length));
                for (int i = 0; i < args.length; i++) {
                    MemorySegment value = switch (args[i]) {
                        case DeviceBuffer b -> arena.allocateFrom(JAVA_LONG, b.pointer());
                        case Long v -> arena.allocateFrom(JAVA_LONG, v);
                        case Integer v -> arena.allocateFrom(JAVA_INT, v);
                        case Float v -> arena.allocateFrom(JAVA_FLOAT, v);
                        case Double v -> arena.allocateFrom(JAVA_DOUBLE, v);
                        case MemorySegment struct -> arena.allocate(struct.byteSize(), 16).copyFrom(struct);
                        case null -> throw new IllegalArgumentException("kernel argument " + i + " is null");
                        default -> throw new IllegalArgumentException("kernel argument " + i + ": unsupported type "
                                + args[i].getClass().getName());
                    };
                    params.setAtIndex(ADDRESS, i, value);
                }
                cuda.check(cuda.call(cuda.cuLaunchKernel, handle, grid.x(), grid.y(), grid.z(),
                        block.x(), block.y(), block.z(), sharedBytes, stream,
                        args.length == 0 ? MemorySegment.NULL : params, MemorySegment.NULL), "cuLaunchKernel(" + name + ")");
            }
        }
    }
}
