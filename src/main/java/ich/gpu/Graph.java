package ich.gpu;

import java.lang.foreign.MemorySegment;

/**
 * A captured CUDA graph, instantiated: the same kernels, copies and library calls with the same arguments,
 * launched as one unit. For a fixed-shape training step that removes the host's per-launch cost (a few
 * microseconds each through FFM and the driver, hundreds per step), which at small batches is most of the step.
 * Inputs change between launches by writing new values into the same device (or pinned) buffers the captured
 * work reads. Made by {@link Stream#capture}.
 */
public final class Graph extends NativeResource {
    private final MemorySegment graph;
    private final MemorySegment exec;

    private Graph(Cuda cuda, MemorySegment graph, MemorySegment exec) {
        super(cuda);
        this.graph = graph;
        this.exec = exec;
    }

    static Graph instantiate(Cuda cuda, MemorySegment graph) {
        MemorySegment exec;
        try {
            exec = cuda.handleOut(cuda.cuGraphInstantiate, "cuGraphInstantiateWithFlags", graph, 0L);
        } catch (RuntimeException e) {
            cuda.check(cuda.call(cuda.cuGraphDestroy, graph), "cuGraphDestroy");
            throw e;
        }
        return new Graph(cuda, graph, exec);
    }

    /** Queues the whole graph on {@code stream}. */
    public void launch(Stream stream) {
        checkOpen();
        cuda.check(cuda.call(cuda.cuGraphLaunch, exec, stream.handle), "cuGraphLaunch");
    }

    @Override
    void release() {
        try {
            cuda.check(cuda.call(cuda.cuGraphExecDestroy, exec), "cuGraphExecDestroy");
        } finally {
            cuda.check(cuda.call(cuda.cuGraphDestroy, graph), "cuGraphDestroy");
        }
    }
}
