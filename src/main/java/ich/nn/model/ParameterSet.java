package ich.nn.model;

import ich.nn.Backend;
import ich.nn.Parameter;
import ich.nn.Tensor;

import java.lang.foreign.Arena;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Allocates a model's parameters on its backend, in the model's arena, and records them by name in creation
 * order (which the layers keep equal to timm's state-dict order).
 */
public final class ParameterSet {
    private final Backend backend;
    private final Arena arena;
    private final Map<String, Parameter> byName = new LinkedHashMap<>();

    /** {@code backend} null: host tensors (see {@link EfficientNetB0#onHost}). */
    public ParameterSet(Backend backend, Arena arena) {
        this.backend = backend;
        this.arena = arena;
    }

    public Backend backend() {
        return backend;
    }

    /** A trainable weight (zero until initialised) with its gradient. */
    public Parameter weight(String name, int... shape) {
        return register(Parameter.weight(name, allocate(shape), allocate(shape)));
    }

    /** A buffer filled with {@code fill}. */
    public Parameter buffer(String name, float fill, int... shape) {
        Parameter p = register(Parameter.buffer(name, allocate(shape)));
        if (fill != 0f) {
            float[] v = new float[Math.toIntExact(p.size())];
            java.util.Arrays.fill(v, fill);
            Initializer.upload(backend, p.value(), v);
        }
        return p;
    }

    private Tensor allocate(int... shape) {
        return backend == null ? Tensor.allocate(arena, shape) : backend.allocate(arena, shape);
    }

    private Parameter register(Parameter p) {
        if (byName.putIfAbsent(p.name(), p) != null) throw new IllegalArgumentException("duplicate parameter " + p.name());
        return p;
    }

    /** All parameters by state-dict name, in state-dict order. */
    public Map<String, Parameter> asMap() {
        return Collections.unmodifiableMap(byName);
    }
}
