package ich.eda;

import ich.dicom.DicomFile;
import ich.dicom.ImageHeader;
import ich.dicom.SampleCorpus;
import ich.hu.HounsfieldTransform;
import ich.labels.LabelTable;
import ich.labels.Subtype;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

class DicomCensusTest {
    /**
     * A folder of hand-made files: two studies, three encodings, a nested folder, a file without extension,
     * a non-DICOM file, and a label without a file.
     */
    @Test
    void everyFileIsAccountedFor(@TempDir Path dir) throws Exception {
        TinyDicom rsna = new TinyDicom();
        rsna.bitsStored = 12;
        rsna.pixelRepresentation = 0;
        rsna.rescaleIntercept = "1";
        rsna.write(dir.resolve("ID_a.dcm"));
        new TinyDicom().write(dir.resolve("ID_b.DCM"));
        TinyDicom other = new TinyDicom();
        other.studyUid = "9.9";
        other.windowCenter = null;
        other.windowWidth = null;
        other.rescaleIntercept = null;
        other.write(dir.resolve("sub/deeper/ID_c.dcm"));
        TinyDicom noStudy = new TinyDicom();
        noStudy.studyUid = null;
        noStudy.windowCenter = "-600.5";
        noStudy.windowWidth = "1500";
        noStudy.write(dir.resolve("sub/d"));
        Files.writeString(dir.resolve("sub/ID_e.dcm"), "this is not DICOM at all, just some text");

        LabelTable labels = LabelTable.of(List.of("ID_a", "ID_b", "ID_c", "ID_e", "ID_x"),
                new byte[]{(byte) (Subtype.ANY.bit() | Subtype.SUBDURAL.bit()), 0, 0, (byte) (Subtype.ANY.bit() | Subtype.EPIDURAL.bit()), 0});
        HeaderScan.Result scan = HeaderScan.scan(dir, 3);
        DicomCensus c = DicomCensus.of(scan, labels);

        assertEquals(5, scan.files().size());
        assertEquals(4, scan.read().size());
        assertEquals(1, scan.unreadable().size());
        HeaderScan.Unreadable bad = scan.unreadable().getFirst();
        assertEquals("ID_e", bad.imageId());
        assertTrue(bad.error().contains("ID_e.dcm"), bad.error());

        assertEquals(4, c.filesWithLabel(), "a, b, c, and the unreadable e: matching is by name");
        assertEquals(List.of(dir.resolve("sub/d")), c.filesWithoutLabel());
        assertEquals(List.of("ID_x"), c.labelsWithoutFile());
        assertEquals(4, c.matchedImages());
        assertEquals(2, c.matchedPositiveImages());
        assertEquals(Map.of(), c.imageIdsInSeveralFiles());

        assertEquals(4, c.images());
        assertEquals(List.of(), c.withoutPixelData());
        Map<DicomCensus.Encoding, DicomCensus.EncodingCount> expected = new TreeMap<>();
        expected.put(new DicomCensus.Encoding(12, 0, 1), new DicomCensus.EncodingCount(1, 1));
        expected.put(new DicomCensus.Encoding(16, 1, -1024), new DicomCensus.EncodingCount(2, 0));
        expected.put(new DicomCensus.Encoding(16, 1, Double.NaN), new DicomCensus.EncodingCount(1, 0));
        assertEquals(expected, c.encodings());
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(c.encodings().keySet()), "sorted, absent intercept last");
        assertEquals(1, c.rsna12BitFix());
        assertEquals(Map.of("1.2.3", 2, "9.9", 1), c.slicesPerStudy());
        assertEquals(1, c.withoutStudyUid());
        assertArrayEquals(new int[]{0, 1, 1}, c.studySizeHistogram());
        assertEquals(Map.of(new DicomCensus.WindowPair(40, 80), 2, new DicomCensus.WindowPair(-600.5, 1500), 1), c.windows());
        assertEquals(1, c.withoutWindow());
    }

    @Test
    void anImageIdInTwoFoldersIsListed(@TempDir Path dir) throws Exception {
        new TinyDicom().write(dir.resolve("one/ID_a.dcm"));
        new TinyDicom().write(dir.resolve("two/ID_a.dcm"));
        DicomCensus c = DicomCensus.of(HeaderScan.scan(dir, 2), LabelTable.of(List.of("ID_a"), new byte[1]));
        assertEquals(2, c.filesWithLabel());
        assertEquals(1, c.matchedImages());
        assertEquals(Map.of("ID_a", List.of(dir.resolve("one/ID_a.dcm"), dir.resolve("two/ID_a.dcm"))), c.imageIdsInSeveralFiles());
    }

    @Test
    void imageIdIsTheFileNameWithoutDcm() {
        assertEquals("ID_000a2d7b0", HeaderScan.imageId(Path.of("x", "ID_000a2d7b0.dcm")));
        assertEquals("ID_1", HeaderScan.imageId(Path.of("ID_1.DCM")));
        assertEquals("I10", HeaderScan.imageId(Path.of("I10")));
        assertEquals("a.dcm.bak", HeaderScan.imageId(Path.of("a.dcm.bak")));
    }

    /** Over the real files, the census says what the reader says of each file, header by header. */
    @Test
    void corpusCensusMatchesTheReader() throws Exception {
        SampleCorpus.assumePresent();
        Path root = SampleCorpus.root().resolve("files");
        List<Path> files;
        try (var walk = Files.walk(root)) {
            files = walk.filter(Files::isRegularFile).sorted().toList();
        }
        List<Path> unreadable = new ArrayList<>(), noPixels = new ArrayList<>();
        Map<DicomCensus.Encoding, int[]> encodings = new HashMap<>();
        Map<String, Integer> studies = new HashMap<>();
        Map<DicomCensus.WindowPair, Integer> windows = new HashMap<>();
        int images = 0, fix = 0, noWindow = 0, noStudy = 0;
        for (Path p : files) {
            ImageHeader h;
            try (DicomFile f = DicomFile.open(p)) {
                h = f.header();
            } catch (IOException e) {
                unreadable.add(p);
                continue;
            }
            if (!h.hasPixelData()) {
                noPixels.add(p);
                continue;
            }
            int frames = h.numberOfFrames(); // each frame is an image, with frame 1's values
            images += frames;
            boolean fixed = expectedFix(h);
            if (fixed) fix += frames;
            int[] n = encodings.computeIfAbsent(new DicomCensus.Encoding(h.bitsStored(), h.pixelRepresentation(), h.rescaleIntercept()), k -> new int[2]);
            n[0] += frames;
            if (fixed) n[1] += frames;
            if (h.studyInstanceUid() == null) noStudy += frames;
            else studies.merge(h.studyInstanceUid(), frames, Integer::sum);
            if (h.windowCenter().length > 0 && h.windowWidth().length > 0) {
                windows.merge(new DicomCensus.WindowPair(h.windowCenter()[0], h.windowWidth()[0]), frames, Integer::sum);
            } else {
                noWindow += frames;
            }
        }

        // The 2-frame Enhanced CT is labelled per frame, as training takes it; a label for the whole file has no image.
        LabelTable labels = LabelTable.of(List.of("ID_000a2d7b0", "ID_nofile", "eCT_Supplemental_frame1", "eCT_Supplemental_frame2",
                "eCT_Supplemental"), new byte[]{(byte) Subtype.ANY.bit(), 0, 0, (byte) Subtype.ANY.bit(), 0});
        HeaderScan.Result scan = HeaderScan.scan(root, 4);
        DicomCensus c = DicomCensus.of(scan, labels);

        assertEquals(files, scan.files());
        assertEquals(unreadable, scan.unreadable().stream().map(HeaderScan.Unreadable::file).toList());
        assertFalse(unreadable.isEmpty(), "the corpus has broken files");
        assertEquals(noPixels, c.withoutPixelData());
        assertEquals(images, c.images());
        assertEquals(fix, c.rsna12BitFix());
        assertTrue(fix > 0 && fix < images, "some, not all, files need the fix: " + fix);
        Map<DicomCensus.Encoding, DicomCensus.EncodingCount> expected = new TreeMap<>();
        encodings.forEach((k, v) -> expected.put(k, new DicomCensus.EncodingCount(v[0], v[1])));
        assertEquals(expected, c.encodings());
        assertEquals(studies, c.slicesPerStudy());
        assertEquals(noStudy, c.withoutStudyUid());
        assertEquals(windows, c.windows());
        assertEquals(noWindow, c.withoutWindow());

        assertTrue(images > files.size() - unreadable.size() - noPixels.size(), "the multi-frame files count each frame");
        assertEquals(2, c.filesWithLabel());
        assertEquals(files.size() - 2, c.filesWithoutLabel().size());
        assertEquals(List.of("ID_nofile", "eCT_Supplemental"), c.labelsWithoutFile());
        assertEquals(3, c.matchedImages());
        assertEquals(2, c.matchedPositiveImages());
        // The real RSNA slice counts in the row of the encoding the reader gives it.
        HeaderScan.FileFacts rsna = scan.read().stream().filter(f -> f.imageId().equals("ID_000a2d7b0")).findFirst().orElseThrow();
        assertTrue(c.encodings().containsKey(new DicomCensus.Encoding(rsna.bitsStored(), rsna.pixelRepresentation(), rsna.rescaleIntercept())));
    }

    /**
     * The rule of {@link HounsfieldTransform#needsRsna12BitFix}, as the conversion applies it: the intercept
     * must be present (a file without one is not the broken CT encoding) and a Modality LUT (without a rescale)
     * takes precedence; only grey images of 8, 16 or 32 bits have Hounsfield units.
     */
    private static boolean expectedFix(ImageHeader h) {
        if (h.samplesPerPixel() != 1 || (h.bitsAllocated() != 8 && h.bitsAllocated() != 16 && h.bitsAllocated() != 32)) return false;
        var t = h.frameTransform(0);
        double intercept = t.rescaleIntercept();
        boolean lut = !t.hasRescale() && h.modalityLut() != null;
        return !lut && HounsfieldTransform.needsRsna12BitFix(h.bitsStored(), h.pixelRepresentation(), intercept);
    }
}
