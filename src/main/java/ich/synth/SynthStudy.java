package ich.synth;

import ich.dicom.CtImage;
import ich.labels.Subtype;

import java.util.List;

/**
 * One synthetic study, fully planned before any pixel is drawn: who (patient), what head, how it was scanned,
 * which hemorrhages where, which side of the split, and the ids of its images (slice order, bottom to top).
 *
 * @param seed  the study's own seed: its noise and densities, whatever else runs in parallel
 * @param test  in the held-out part (the study's patient is)
 */
public record SynthStudy(int index, long seed, int patient, String patientId, String studyInstanceUid,
                         String seriesInstanceUid, List<String> imageIds, Anatomy anatomy, Acquisition acquisition,
                         List<Lesion> lesions, boolean test) {

    public int slices() { return acquisition.slices(); }

    /** The labels the lesion plan gives slice k (bit per {@link Subtype}); the rendered slice may drop a lesion too small to see. */
    public int plannedLabels(int k) {
        int bits = 0;
        for (Lesion l : lesions) if (l.spans(k)) bits |= l.type().bit();
        return bits == 0 ? 0 : bits | Subtype.ANY.bit();
    }

    /** The DICOM image of slice k with these stored pixel words. */
    public CtImage image(int k, byte[] pixels) {
        Acquisition a = acquisition;
        return new CtImage(imageIds.get(k), patientId, studyInstanceUid, seriesInstanceUid, a.position(k), a.orientation(),
                new double[]{a.pixelSpacing(), a.pixelSpacing()}, a.sliceSpacing(), a.instanceNumber(k), a.size(), a.size(),
                a.encoding().bitsStored, a.encoding().pixelRepresentation, a.windowCenter(), a.windowWidth(),
                a.rescaleIntercept(), 1, pixels);
    }
}
