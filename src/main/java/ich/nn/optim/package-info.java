/** Optimisers over {@link ich.nn.Parameter}s: {@link ich.nn.optim.Adam} (and AdamW), gradient-norm clipping. */
package ich.nn.optim;
