package ich.nn.cuda;

import ich.gpu.Context;
import ich.gpu.GpuUnavailableException;
import ich.gpu.Stream;
import ich.nn.Backend;
import ich.nn.ConvGeometry;
import ich.nn.Tensor;

import java.lang.foreign.Arena;

/** The CUDA backend (under construction in this session: every op still throws). */
public final class CudaBackend implements Backend {
    private CudaBackend() {}

    /** @throws GpuUnavailableException when there is no usable GPU, cuDNN, cuBLAS or kernels, saying which */
    public static CudaBackend open(int ordinal) {
        throw new GpuUnavailableException("the CUDA backend is not built yet");
    }

    /** The context every op runs in; other threads make it current before using the backend's tensors. */
    public Context context() { throw new UnsupportedOperationException(); }

    /** The stream every op is queued on, in call order. */
    public Stream stream() { throw new UnsupportedOperationException(); }

    /** The CUDA ordinal of the GPU. */
    public int ordinal() { throw new UnsupportedOperationException(); }

    /** The GPU's name, e.g. "NVIDIA H100 80GB HBM3". */
    public String deviceName() { throw new UnsupportedOperationException(); }

    /** Waits until every queued op has finished. */
    public void synchronize() { throw new UnsupportedOperationException(); }

    /** The most device memory this backend held at once (tensors, pools and workspaces), in bytes. */
    public long peakAllocatedBytes() { throw new UnsupportedOperationException(); }

    @Override public String name() { throw new UnsupportedOperationException(); }
    @Override public Tensor allocate(Arena arena, int... shape) { throw new UnsupportedOperationException(); }
    @Override public void copy(Tensor source, Tensor destination) { throw new UnsupportedOperationException(); }
    @Override public void conv2dForward(ConvGeometry g, Tensor x, Tensor w, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void conv2dBackwardData(ConvGeometry g, Tensor dy, Tensor w, Tensor dx) { throw new UnsupportedOperationException(); }
    @Override public void conv2dBackwardFilter(ConvGeometry g, Tensor x, Tensor dy, Tensor dw) { throw new UnsupportedOperationException(); }
    @Override public void batchNormForwardTraining(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double momentum, double eps, Tensor y, Tensor saveMean, Tensor saveInvStd) { throw new UnsupportedOperationException(); }
    @Override public void batchNormForwardInference(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double eps, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void batchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd, Tensor dx, Tensor dgamma, Tensor dbeta) { throw new UnsupportedOperationException(); }
    @Override public void silu(Tensor x, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void siluBackward(Tensor x, Tensor dy, Tensor dx) { throw new UnsupportedOperationException(); }
    @Override public void sigmoid(Tensor x, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void sigmoidBackward(Tensor y, Tensor dy, Tensor dx) { throw new UnsupportedOperationException(); }
    @Override public void add(Tensor a, Tensor b, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void accumulate(Tensor into, Tensor from) { throw new UnsupportedOperationException(); }
    @Override public void multiplyByMask(Tensor x, Tensor mask, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void scale(Tensor t, float factor) { throw new UnsupportedOperationException(); }
    @Override public double sumOfSquares(Tensor t) { throw new UnsupportedOperationException(); }
    @Override public void scaleChannels(Tensor x, Tensor s, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void scaleChannelsBackward(Tensor x, Tensor s, Tensor dy, Tensor dx, Tensor ds) { throw new UnsupportedOperationException(); }
    @Override public void globalAveragePool(Tensor x, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void globalAveragePoolBackward(Tensor dy, Tensor dx) { throw new UnsupportedOperationException(); }
    @Override public void linearForward(Tensor x, Tensor w, Tensor b, Tensor y) { throw new UnsupportedOperationException(); }
    @Override public void linearBackward(Tensor x, Tensor w, Tensor dy, Tensor dx, Tensor dw, Tensor db) { throw new UnsupportedOperationException(); }
    @Override public double bceWithLogits(Tensor logits, Tensor targets, Tensor labelWeights, Tensor dLogits) { throw new UnsupportedOperationException(); }
    @Override public void adamStep(Tensor param, Tensor grad, Tensor m, Tensor v, long step, double lr, double beta1, double beta2, double eps, double weightDecay, boolean decoupled) { throw new UnsupportedOperationException(); }
    @Override public void close() {}
}
