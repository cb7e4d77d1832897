/**
 * Layers with forward and backward passes on a {@link ich.nn.Backend}, and timm's EfficientNet-B0 built from them
 * with timm's state-dict names ({@link ich.nn.model.EfficientNetB0}). A {@link ich.nn.model.StepContext} carries
 * one step's mode, activations and random streams. {@link ich.nn.model.OpBench} runs B0's ops one at a time on
 * any backend, for timing backends side by side.
 */
package ich.nn.model;
