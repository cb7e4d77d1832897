package ich.dicom;

/**
 * What applies to one frame: the modality and VOI parameters and the frame's position and orientation. For enhanced
 * multi-frame objects they come from the Per-frame (5200,9230) or Shared (5200,9229) Functional Groups (PS3.3
 * C.7.6.16.2.9 Pixel Value Transformation, C.7.6.16.2.10 Frame VOI LUT, C.7.6.16.2.3 Plane Position (Patient),
 * C.7.6.16.2.4 Plane Orientation (Patient)), else from the top-level attributes.
 *
 * @param rescaleSlope         (0028,1053) Rescale Slope, NaN when absent
 * @param rescaleIntercept     (0028,1052) Rescale Intercept, NaN when absent
 * @param windowCenter         (0028,1050) Window Center, all values; empty when absent
 * @param windowWidth          (0028,1051) Window Width, all values; empty when absent
 * @param imagePositionPatient (0020,0032) Image Position (Patient) of the frame, in the Plane Position Sequence
 *                             (0020,9113) of enhanced objects; empty when absent
 * @param imageOrientationPatient (0020,0037) Image Orientation (Patient) of the frame, in the Plane Orientation
 *                             Sequence (0020,9116) of enhanced objects; empty when absent
 */
public record FrameTransform(double rescaleSlope, double rescaleIntercept, double[] windowCenter, double[] windowWidth,
                             double[] imagePositionPatient, double[] imageOrientationPatient) {
    /** A frame with no position or orientation of its own. */
    public FrameTransform(double rescaleSlope, double rescaleIntercept, double[] windowCenter, double[] windowWidth) {
        this(rescaleSlope, rescaleIntercept, windowCenter, windowWidth, new double[0], new double[0]);
    }

    public boolean hasRescale() { return !Double.isNaN(rescaleSlope) || !Double.isNaN(rescaleIntercept); }

    /** The third value of the frame's Image Position (Patient), the slice's z in mm; NaN without a full position. */
    public double z() {
        return imagePositionPatient.length == 3 ? imagePositionPatient[2] : Double.NaN;
    }
}
