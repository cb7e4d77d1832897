package ich.gpu;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/** The two shapes every CUDA driver and NVML function shares: an int status return, called reflectively. */
final class Downcalls {
    private Downcalls() {}

    /** A handle for {@code int name(args...)}; fails when the library lacks the symbol. */
    static MethodHandle statusFunction(Linker linker, SymbolLookup lookup, String name, MemoryLayout... args) {
        return linker.downcallHandle(lookup.findOrThrow(name), FunctionDescriptor.of(JAVA_INT, args));
    }

    /** Invokes a status-returning handle; unchecked throwables pass through unchanged. */
    static int callStatus(MethodHandle handle, Object... args) {
        try {
            return (int) handle.invokeWithArguments(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
