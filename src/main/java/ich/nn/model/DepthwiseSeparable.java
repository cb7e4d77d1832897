package ich.nn.model;

import java.util.List;

/**
 * timm's DepthwiseSeparableConv (B0's first stage): conv_dw, bn1, SiLU, se, conv_pw, bn2 (no activation), with
 * a skip when the stride is 1 and the channels match (not in B0, where 32 -> 16).
 */
public final class DepthwiseSeparable extends Block {

    public DepthwiseSeparable(ParameterSet params, String name, int in, int out, int kernel, int stride, double seRatio,
                              double dropPathRate, double bnMomentum, double bnEps) {
        super(name, List.of(
                new Conv2d(params, name + ".conv_dw", in, in, kernel, stride, in),
                new BatchNorm2d(params, name + ".bn1", in, bnMomentum, bnEps),
                new SiLU(name + ".bn1.act"),
                new SqueezeExcite(params, name + ".se", in, seChannels(in, seRatio)),
                new Conv2d(params, name + ".conv_pw", in, out, 1, 1, 1),
                new BatchNorm2d(params, name + ".bn2", out, bnMomentum, bnEps)),
                stride == 1 && in == out, dropPathRate);
    }

    @Override
    public String type() {
        return "DepthwiseSeparable";
    }
}
