package ich.eda;

import ich.labels.LabelTable;
import ich.labels.Subtype;
import ich.train.ImageCatalog;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What a header scan says about a DICOM folder, next to the labels: which files match label rows (by image
 * id), and over the readable images (the frames of files with Pixel Data; a multi-frame file's frames take frame
 * 1's header values) the studies, pixel encodings, the RSNA 12-bit fix and the header windows. Every file is
 * accounted for: read, unreadable, or read without Pixel Data.
 */
public record DicomCensus(
        HeaderScan.Result scan,
        int filesWithLabel,
        List<Path> filesWithoutLabel,
        List<String> labelsWithoutFile,
        Map<String, List<Path>> imageIdsInSeveralFiles,
        int matchedImages,
        int matchedPositiveImages,
        List<Path> withoutPixelData,
        int images,
        Map<Encoding, EncodingCount> encodings,
        int rsna12BitFix,
        Map<String, Integer> slicesPerStudy,
        int withoutStudyUid,
        Map<WindowPair, Integer> windows,
        int withoutWindow) {

    /**
     * One pixel encoding: (0028,0101) Bits Stored, (0028,0103) Pixel Representation and (0028,1052) Rescale
     * Intercept (NaN when absent). Sorted by the three, absent intercept last.
     */
    public record Encoding(int bitsStored, int pixelRepresentation, double rescaleIntercept) implements Comparable<Encoding> {
        private static final Comparator<Encoding> ORDER = Comparator.comparingInt(Encoding::bitsStored)
                .thenComparingInt(Encoding::pixelRepresentation).thenComparingDouble(Encoding::rescaleIntercept);

        @Override
        public int compareTo(Encoding o) { return ORDER.compare(this, o); }
    }

    /** Images (frames) with one encoding, and how many of them the RSNA 12-bit fix applies to. */
    public record EncodingCount(int images, int rsna12BitFix) {}

    /** First Window Center and Width values. Sorted by center, then width. */
    public record WindowPair(double center, double width) implements Comparable<WindowPair> {
        private static final Comparator<WindowPair> ORDER = Comparator.comparingDouble(WindowPair::center)
                .thenComparingDouble(WindowPair::width);

        @Override
        public int compareTo(WindowPair o) { return ORDER.compare(this, o); }
    }

    public static DicomCensus of(HeaderScan.Result scan, LabelTable labels) {
        // Matching is by file name, readable or not: a label whose file is unreadable still has a file. A multi-frame
        // file holds one image per frame, named as training and scoring name them (ImageCatalog.frameId).
        Map<String, List<Path>> filesById = new LinkedHashMap<>();
        List<Path> withoutLabel = new ArrayList<>();
        int withLabel = 0;
        List<HeaderScan.Outcome> all = new ArrayList<>(scan.read());
        all.addAll(scan.unreadable());
        all.sort(Comparator.comparing(HeaderScan.Outcome::file));
        for (HeaderScan.Outcome o : all) {
            int frames = o instanceof HeaderScan.FileFacts f && f.hasPixelData() ? Math.max(1, f.frames()) : 1;
            boolean labelled = false;
            for (int k = 0; k < frames; k++) {
                String id = ImageCatalog.frameId(o.imageId(), k, frames);
                if (labels.indexOf(id) < 0) continue;
                labelled = true;
                filesById.computeIfAbsent(id, x -> new ArrayList<>()).add(o.file());
            }
            if (labelled) withLabel++;
            else withoutLabel.add(o.file());
        }
        Map<String, List<Path>> several = new TreeMap<>();
        filesById.forEach((id, files) -> { if (files.size() > 1) several.put(id, List.copyOf(files)); });
        List<String> labelsWithoutFile = new ArrayList<>();
        int matchedPositive = 0;
        for (int i = 0; i < labels.images(); i++) {
            String id = labels.imageId(i);
            if (!filesById.containsKey(id)) labelsWithoutFile.add(id);
            else if (labels.label(i, Subtype.ANY) == 1) matchedPositive++;
        }

        List<Path> noPixels = new ArrayList<>();
        Map<Encoding, EncodingCount> encodings = new TreeMap<>();
        Map<String, Integer> studies = new HashMap<>();
        Map<WindowPair, Integer> windows = new TreeMap<>();
        int images = 0, fix = 0, noStudy = 0, noWindow = 0;
        for (HeaderScan.FileFacts f : scan.read()) {
            if (!f.hasPixelData()) {
                noPixels.add(f.file());
                continue;
            }
            // Each frame is an image; its encoding and window are taken from frame 1's.
            int frames = Math.max(1, f.frames());
            images += frames;
            int fixed = f.rsna12BitFix() ? frames : 0;
            encodings.merge(new Encoding(f.bitsStored(), f.pixelRepresentation(), f.rescaleIntercept()), new EncodingCount(frames, fixed),
                    (a, b) -> new EncodingCount(a.images() + b.images(), a.rsna12BitFix() + b.rsna12BitFix()));
            fix += fixed;
            if (f.studyInstanceUid() == null || f.studyInstanceUid().isEmpty()) noStudy += frames;
            else studies.merge(f.studyInstanceUid(), frames, Integer::sum);
            if (f.hasWindow()) windows.merge(new WindowPair(f.windowCenter(), f.windowWidth()), frames, Integer::sum);
            else noWindow += frames;
        }
        return new DicomCensus(scan, withLabel, List.copyOf(withoutLabel), List.copyOf(labelsWithoutFile), several,
                filesById.size(), matchedPositive, List.copyOf(noPixels), images, encodings, fix, studies, noStudy,
                windows, noWindow);
    }

    /** {@code [k]}: studies with exactly k slices (files with Pixel Data), k from 0 to the largest study. */
    public int[] studySizeHistogram() {
        int max = slicesPerStudy.values().stream().mapToInt(Integer::intValue).max().orElse(0);
        int[] h = new int[max + 1];
        for (int n : slicesPerStudy.values()) h[n]++;
        return h;
    }
}
