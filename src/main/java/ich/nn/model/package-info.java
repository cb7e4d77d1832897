/**
 * Layers with forward and backward passes on a {@link ich.nn.Backend}, and timm's EfficientNet-B0 built from them
 * with timm's state-dict names ({@link ich.nn.model.EfficientNetB0}). A {@link ich.nn.model.StepContext} carries
 * one step's mode, activations and random streams.
 */
package ich.nn.model;
