/**
 * The CPU reference backend of {@link ich.nn.Backend}: {@link ich.nn.cpu.CpuBackend}, with a blocked SGEMM for
 * the convolutions (a Vector API micro-kernel where {@code jdk.incubator.vector} is loaded, plain loops
 * otherwise) and a dedicated depthwise kernel.
 */
package ich.nn.cpu;
