package ich.nn.model;

import java.util.List;

/**
 * timm's InvertedResidual (MBConv): conv_pw (expand 1x1), bn1, SiLU, conv_dw, bn2, SiLU, se, conv_pwl (project
 * 1x1), bn3 (no activation), with a drop-path skip when the stride is 1 and the channels match. The SE
 * reduction is a quarter of the block's <em>input</em> channels (timm divides se 0.25 by the expansion ratio).
 */
public final class InvertedResidual extends Block {

    public InvertedResidual(ParameterSet params, String name, int in, int out, int kernel, int stride, double expansion,
                            double seRatio, double dropPathRate, double bnMomentum, double bnEps) {
        this(params, name, in, makeDivisible(in * expansion, 8), out, kernel, stride, seRatio, dropPathRate, bnMomentum, bnEps);
    }

    private InvertedResidual(ParameterSet params, String name, int in, int mid, int out, int kernel, int stride,
                             double seRatio, double dropPathRate, double bnMomentum, double bnEps) {
        super(name, List.of(
                new Conv2d(params, name + ".conv_pw", in, mid, 1, 1, 1),
                new BatchNorm2d(params, name + ".bn1", mid, bnMomentum, bnEps),
                new SiLU(name + ".bn1.act"),
                new Conv2d(params, name + ".conv_dw", mid, mid, kernel, stride, mid),
                new BatchNorm2d(params, name + ".bn2", mid, bnMomentum, bnEps),
                new SiLU(name + ".bn2.act"),
                new SqueezeExcite(params, name + ".se", mid, seChannels(in, seRatio)),
                new Conv2d(params, name + ".conv_pwl", mid, out, 1, 1, 1),
                new BatchNorm2d(params, name + ".bn3", out, bnMomentum, bnEps)),
                stride == 1 && in == out, dropPathRate);
    }

    @Override
    public String type() {
        return "InvertedResidual";
    }
}
