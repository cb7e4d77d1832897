package ich.dicom;

import java.util.Objects;

/**
 * One CT slice to write: the CT Image attributes the pipeline reads (see {@link ImageHeader}) and its pixels.
 * Always one frame, one sample per pixel, MONOCHROME2, Bits Allocated 16, High Bit = Bits Stored - 1, SOP Class
 * CT Image Storage. {@link DicomWriter#ctImage(CtImage)} turns it into a data set.
 *
 * <p>Arrays are not copied: the record holds what it was given until it is written.
 *
 * @param sopInstanceUid       (0008,0018), also the Media Storage SOP Instance UID of the File Meta Information
 * @param imagePositionPatient (0020,0032): x, y, z in mm of the centre of the first pixel
 * @param imageOrientationPatient (0020,0037): row direction cosines, then column direction cosines
 * @param pixelSpacing         (0028,0030): row spacing (between rows), column spacing, in mm
 * @param windowCenter         (0028,1050) as decimal strings, one or more values, written as given (e.g. {@code 00036})
 * @param windowWidth          (0028,1051) likewise
 * @param pixels               rows x columns 16-bit words, little endian, row after row
 */
public record CtImage(String sopInstanceUid, String patientId, String studyInstanceUid, String seriesInstanceUid,
                      double[] imagePositionPatient, double[] imageOrientationPatient, double[] pixelSpacing,
                      double sliceThickness, int instanceNumber, int rows, int columns, int bitsStored,
                      int pixelRepresentation, String[] windowCenter, String[] windowWidth, double rescaleIntercept,
                      double rescaleSlope, byte[] pixels) {

    public static final String CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";

    public CtImage {
        Objects.requireNonNull(sopInstanceUid, "sopInstanceUid");
        Objects.requireNonNull(pixels, "pixels");
        if (imagePositionPatient.length != 3) throw new IllegalArgumentException("Image Position (Patient) needs 3 values");
        if (imageOrientationPatient.length != 6) throw new IllegalArgumentException("Image Orientation (Patient) needs 6 values");
        if (pixelSpacing.length != 2) throw new IllegalArgumentException("Pixel Spacing needs 2 values");
        if (rows < 1 || rows > 0xFFFF || columns < 1 || columns > 0xFFFF) {
            throw new IllegalArgumentException("rows and columns must be within 1..65535: " + rows + " x " + columns);
        }
        if (bitsStored < 1 || bitsStored > 16) throw new IllegalArgumentException("Bits Stored " + bitsStored + " outside 1..16");
        if (pixelRepresentation != 0 && pixelRepresentation != 1) {
            throw new IllegalArgumentException("Pixel Representation " + pixelRepresentation + " is not 0 or 1");
        }
        if (pixels.length != 2L * rows * columns) {
            throw new IllegalArgumentException(pixels.length + " pixel bytes for " + rows + " x " + columns + " 16-bit pixels");
        }
    }

    public int bitsAllocated() { return 16; }

    public int highBit() { return bitsStored - 1; }
}
