package ich.dicom;

/**
 * The modality and VOI parameters that apply to one frame: for enhanced multi-frame objects from the
 * Per-frame (5200,9230) or Shared (5200,9229) Functional Groups (PS3.3 C.7.6.16.2.9 Pixel Value
 * Transformation, C.7.6.16.2.10 Frame VOI LUT), else from the top-level attributes.
 *
 * @param rescaleSlope     (0028,1053) Rescale Slope, NaN when absent
 * @param rescaleIntercept (0028,1052) Rescale Intercept, NaN when absent
 * @param windowCenter     (0028,1050) Window Center, all values; empty when absent
 * @param windowWidth      (0028,1051) Window Width, all values; empty when absent
 */
public record FrameTransform(double rescaleSlope, double rescaleIntercept, double[] windowCenter, double[] windowWidth) {
    public boolean hasRescale() { return !Double.isNaN(rescaleSlope) || !Double.isNaN(rescaleIntercept); }
}
