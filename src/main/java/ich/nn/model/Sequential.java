package ich.nn.model;

import ich.nn.Parameter;
import ich.nn.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Layers applied in order. The backward pass stops early below the lowest layer that has a trainable weight
 * when the caller needs no input gradient, so a frozen backbone costs no backward work at all.
 *
 * <p>A {@link BatchNorm2d} followed by a {@link SiLU} runs as one fused op where the backend has it for the
 * activations' storage ({@code Backend.fusesBatchNormSilu}): the SiLU's forward and backward are then done by the
 * batch norm, and the normalised tensor between them is neither written nor kept.
 */
public class Sequential implements Layer {
    private final String name;
    private final List<Layer> layers;
    /** Of the last forward: which layers ran inside the layer before them (a fused SiLU). */
    private boolean[] fusedIntoPrevious;

    public Sequential(String name, List<Layer> layers) {
        this.name = name;
        this.layers = List.copyOf(layers);
    }

    public List<Layer> layers() {
        return layers;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String type() {
        return "Sequential";
    }

    @Override
    public Tensor forward(Tensor x, StepContext ctx) {
        boolean[] fused = new boolean[layers.size()];
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            if (l instanceof BatchNorm2d bn && i + 1 < layers.size() && layers.get(i + 1) instanceof SiLU && bn.fusesSilu(x, ctx)) {
                x = bn.forwardWithSilu(x, ctx);
                fused[++i] = true;
            } else {
                x = l.forward(x, ctx);
            }
        }
        fusedIntoPrevious = fused;
        return x;
    }

    @Override
    public Tensor backward(Tensor dy, StepContext ctx, boolean needInputGrad) {
        int lowest = 0;
        if (!needInputGrad) {
            lowest = -1;
            for (int i = 0; i < layers.size(); i++) {
                if (layers.get(i).hasTrainable()) {
                    lowest = i;
                    break;
                }
            }
            if (lowest < 0) return null;
        }
        for (int i = layers.size() - 1; i >= lowest; i--) {
            if (fusedIntoPrevious != null && fusedIntoPrevious[i]) continue; // the layer before takes dy as it is
            dy = layers.get(i).backward(dy, ctx, i > lowest || needInputGrad);
        }
        return needInputGrad ? dy : null;
    }

    @Override
    public List<Parameter> parameters() {
        List<Parameter> all = new ArrayList<>();
        for (Layer l : layers) all.addAll(l.parameters());
        return all;
    }

    @Override
    public void initialize(Initializer init) {
        for (Layer l : layers) l.initialize(init);
    }

    @Override
    public int[] outputShape(int[] inputShape) {
        for (Layer l : layers) inputShape = l.outputShape(inputShape);
        return inputShape;
    }

    @Override
    public long macs(int[] inputShape) {
        long total = 0;
        for (Layer l : layers) {
            total += l.macs(inputShape);
            inputShape = l.outputShape(inputShape);
        }
        return total;
    }
}
