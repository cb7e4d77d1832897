package ich.dicom;

import java.util.ArrayList;
import java.util.List;

/**
 * The header fields the pipeline uses, typed. Absent optional numbers are NaN, absent arrays are empty,
 * absent strings are null. Image Pixel Module values are validated here (PS3.3 C.7.6.3) so that later
 * stages can trust them.
 */
public record ImageHeader(
        String sopClassUid,
        String sopInstanceUid,
        String patientId,
        String studyInstanceUid,
        String seriesInstanceUid,
        String modality,
        double[] imagePositionPatient,
        double[] imageOrientationPatient,
        double[] pixelSpacing,
        double sliceThickness,
        int rows,
        int columns,
        int numberOfFrames,
        int samplesPerPixel,
        int bitsAllocated,
        int bitsStored,
        int highBit,
        int pixelRepresentation,
        String photometricInterpretation,
        int planarConfiguration,
        double rescaleSlope,
        double rescaleIntercept,
        double[] windowCenter,
        double[] windowWidth,
        Integer pixelPaddingValue,
        Integer pixelPaddingRangeLimit,
        ModalityLut modalityLut,
        List<FrameTransform> frameTransforms,
        boolean hasPixelData) {

    /** Bytes of one frame in the native layout (Bits Allocated 1 is bit-packed, PS3.5 8.1.1). */
    public long frameBytes() {
        long samples = (long) rows * columns * samplesPerPixel;
        return bitsAllocated == 1 ? (samples + 7) / 8 : samples * (bitsAllocated / 8);
    }

    /** The transform for frame {@code i} (0-based). */
    public FrameTransform frameTransform(int i) {
        return frameTransforms.get(Math.min(i, frameTransforms.size() - 1));
    }

    static ImageHeader read(DataSet ds, String file) throws DicomFormatException {
        boolean hasPixels = ds.contains(Tag.PIXEL_DATA);
        int rows = ds.us(Tag.ROWS, 0);
        int columns = ds.us(Tag.COLUMNS, 0);
        int frames = (int) Math.round(ds.number(Tag.NUMBER_OF_FRAMES, VR.IS, 1));
        int spp = ds.us(Tag.SAMPLES_PER_PIXEL, 1);
        int bitsAllocated = ds.us(Tag.BITS_ALLOCATED, 0);
        int bitsStored = ds.us(Tag.BITS_STORED, bitsAllocated);
        int highBit = ds.us(Tag.HIGH_BIT, bitsStored - 1);
        int pixelRepresentation = ds.us(Tag.PIXEL_REPRESENTATION, 0);
        String photometric = ds.string(Tag.PHOTOMETRIC_INTERPRETATION);
        int planar = ds.us(Tag.PLANAR_CONFIGURATION, 0);

        if (hasPixels) {
            long at = ds.valueOffset(Tag.PIXEL_DATA);
            if (rows <= 0 || columns <= 0) throw new DicomFormatException(file, at, Tag.ROWS,
                    "Pixel Data present but (0028,0010) Rows / (0028,0011) Columns are " + rows + " x " + columns);
            if (frames < 1) throw new DicomFormatException(file, at, Tag.NUMBER_OF_FRAMES, "Number of Frames is " + frames);
            if (spp != 1 && spp != 3 && spp != 4) throw new DicomFormatException(file, at, Tag.SAMPLES_PER_PIXEL,
                    "Samples per Pixel is " + spp + " (PS3.3 C.7.6.3.1.1 allows 1, 3 or 4)");
            if (bitsAllocated != 1 && bitsAllocated != 8 && bitsAllocated != 16 && bitsAllocated != 32) {
                throw new DicomFormatException(file, at, Tag.BITS_ALLOCATED, "Bits Allocated is " + bitsAllocated + " (1, 8, 16 or 32 expected)");
            }
            if (bitsStored < 1 || bitsStored > bitsAllocated) throw new DicomFormatException(file, at, Tag.BITS_STORED,
                    "Bits Stored " + bitsStored + " outside 1.." + bitsAllocated + " (Bits Allocated)");
            if (highBit < bitsStored - 1 || highBit >= bitsAllocated) throw new DicomFormatException(file, at, Tag.HIGH_BIT,
                    "High Bit " + highBit + " inconsistent with Bits Stored " + bitsStored + " and Bits Allocated " + bitsAllocated);
            if (pixelRepresentation != 0 && pixelRepresentation != 1) throw new DicomFormatException(file, at, Tag.PIXEL_REPRESENTATION,
                    "Pixel Representation is " + pixelRepresentation + " (0 or 1 expected)");
        }

        double slope = ds.number(Tag.RESCALE_SLOPE, VR.DS, Double.NaN);
        double intercept = ds.number(Tag.RESCALE_INTERCEPT, VR.DS, Double.NaN);
        double[] center = ds.numbers(Tag.WINDOW_CENTER, VR.DS);
        double[] width = ds.numbers(Tag.WINDOW_WIDTH, VR.DS);
        FrameTransform topLevel = new FrameTransform(slope, intercept, center, width, ds.numbers(Tag.IMAGE_POSITION_PATIENT, VR.DS),
                ds.numbers(Tag.IMAGE_ORIENTATION_PATIENT, VR.DS));

        List<FrameTransform> transforms = new ArrayList<>();
        List<DataSet> perFrame = ds.sequence(Tag.PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
        List<DataSet> shared = ds.sequence(Tag.SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        if (perFrame.isEmpty() && shared.isEmpty()) {
            transforms.add(topLevel);
        } else {
            FrameTransform sharedT = shared.isEmpty() ? topLevel : functionalGroups(shared.getFirst(), topLevel);
            if (perFrame.isEmpty()) transforms.add(sharedT);
            for (DataSet item : perFrame) transforms.add(functionalGroups(item, sharedT));
        }
        FrameTransform first = transforms.getFirst();

        return new ImageHeader(
                ds.string(Tag.SOP_CLASS_UID), ds.string(Tag.SOP_INSTANCE_UID), ds.string(Tag.PATIENT_ID),
                ds.string(Tag.STUDY_INSTANCE_UID), ds.string(Tag.SERIES_INSTANCE_UID), ds.string(Tag.MODALITY),
                ds.numbers(Tag.IMAGE_POSITION_PATIENT, VR.DS), ds.numbers(Tag.IMAGE_ORIENTATION_PATIENT, VR.DS),
                ds.numbers(Tag.PIXEL_SPACING, VR.DS), ds.number(Tag.SLICE_THICKNESS, VR.DS, Double.NaN),
                rows, columns, frames, spp, bitsAllocated, bitsStored, highBit, pixelRepresentation, photometric, planar,
                first.rescaleSlope(), first.rescaleIntercept(), first.windowCenter(), first.windowWidth(),
                ds.usOrSs(Tag.PIXEL_PADDING_VALUE, pixelRepresentation),
                ds.usOrSs(Tag.PIXEL_PADDING_RANGE_LIMIT, pixelRepresentation),
                modalityLut(ds, file, pixelRepresentation), List.copyOf(transforms), hasPixels);
    }

    /** Values from a functional-groups item, each falling back to {@code base} where the item lacks it. */
    private static FrameTransform functionalGroups(DataSet item, FrameTransform base) throws DicomFormatException {
        double slope = base.rescaleSlope(), intercept = base.rescaleIntercept();
        double[] center = base.windowCenter(), width = base.windowWidth();
        List<DataSet> pvt = item.sequence(Tag.PIXEL_VALUE_TRANSFORMATION_SEQUENCE);
        if (!pvt.isEmpty()) {
            slope = pvt.getFirst().number(Tag.RESCALE_SLOPE, VR.DS, slope);
            intercept = pvt.getFirst().number(Tag.RESCALE_INTERCEPT, VR.DS, intercept);
        }
        List<DataSet> voi = item.sequence(Tag.FRAME_VOI_LUT_SEQUENCE);
        if (!voi.isEmpty()) {
            double[] c = voi.getFirst().numbers(Tag.WINDOW_CENTER, VR.DS), w = voi.getFirst().numbers(Tag.WINDOW_WIDTH, VR.DS);
            if (c.length > 0) center = c;
            if (w.length > 0) width = w;
        }
        double[] position = base.imagePositionPatient();
        List<DataSet> plane = item.sequence(Tag.PLANE_POSITION_SEQUENCE);
        if (!plane.isEmpty()) {
            double[] p = plane.getFirst().numbers(Tag.IMAGE_POSITION_PATIENT, VR.DS);
            if (p.length > 0) position = p;
        }
        double[] orientation = base.imageOrientationPatient();
        List<DataSet> planeOrientation = item.sequence(Tag.PLANE_ORIENTATION_SEQUENCE);
        if (!planeOrientation.isEmpty()) {
            double[] o = planeOrientation.getFirst().numbers(Tag.IMAGE_ORIENTATION_PATIENT, VR.DS);
            if (o.length > 0) orientation = o;
        }
        return new FrameTransform(slope, intercept, center, width, position, orientation);
    }

    /** (0028,3000) Modality LUT Sequence, first item: LUT Descriptor (0028,3002) and LUT Data (0028,3006). */
    private static ModalityLut modalityLut(DataSet ds, String file, int pixelRepresentation) throws DicomFormatException {
        List<DataSet> items = ds.sequence(Tag.MODALITY_LUT_SEQUENCE);
        if (items.isEmpty()) return null;
        DataSet lut = items.getFirst();
        double[] desc = lut.numbers(Tag.LUT_DESCRIPTOR, VR.US);
        if (desc.length != 3) {
            throw new DicomFormatException(file, lut.valueOffset(Tag.LUT_DESCRIPTOR), Tag.LUT_DESCRIPTOR,
                    "LUT Descriptor has " + desc.length + " values, 3 expected (PS3.3 C.11.1.1.1)");
        }
        // The VR is "US or SS" (PS3.6), but the first and third values are always unsigned and only the second
        // follows Pixel Representation (PS3.3 C.11.1.1.1): take the 16 bits as stored and interpret each.
        int count = (int) desc[0] & 0xFFFF;
        int entries = count == 0 ? 65536 : count;
        // The first mapped value is SS when Pixel Representation is 1 (PS3.3 C.11.1.1.1).
        int firstMapped = pixelRepresentation == 1 ? (short) (int) desc[1] : (int) desc[1] & 0xFFFF;
        int bits = (int) desc[2] & 0xFFFF;
        double[] data = lut.numbers(Tag.LUT_DATA, VR.OW);
        if (data.length < entries) {
            throw new DicomFormatException(file, lut.valueOffset(Tag.LUT_DATA), Tag.LUT_DATA,
                    "LUT Data has " + data.length + " entries, the LUT Descriptor declares " + entries);
        }
        int[] values = new int[entries];
        int mask = bits >= 16 ? 0xFFFF : (1 << Math.max(bits, 1)) - 1;
        for (int i = 0; i < entries; i++) values[i] = (int) data[i] & mask;
        return new ModalityLut(firstMapped, bits, values, lut.string(Tag.MODALITY_LUT_TYPE));
    }
}
