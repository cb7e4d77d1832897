package ich.cli;

import ich.dicom.DicomFile;
import ich.dicom.ImageHeader;
import ich.dicom.SampleCorpus;
import ich.dicom.StoredValues;
import ich.eda.TinyDicom;
import ich.hu.HounsfieldTransform;
import ich.preprocess.Window;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.awt.image.Raster;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static ich.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code ich preview}: the PNGs are the windows the model sees, pixel for pixel. */
class PreviewCommandTest {
    static final List<String> SUFFIXES = List.of("raw", "window", "brain", "subdural", "soft", "bsb");

    static int round255(float v) { return Math.round(255f * v); }

    static BufferedImage read(Path p) throws Exception {
        assertTrue(Files.isRegularFile(p), p + " exists");
        BufferedImage img = ImageIO.read(p.toFile());
        assertNotNull(img, p + " is a PNG ImageIO reads");
        return img;
    }

    /** An 8-bit grey PNG's samples, row-major. */
    static int[] grey(Path p, int width, int height) throws Exception {
        BufferedImage img = read(p);
        assertEquals(width, img.getWidth(), p.toString());
        assertEquals(height, img.getHeight(), p.toString());
        Raster r = img.getRaster();
        assertEquals(1, r.getNumBands(), p + " is grey");
        assertEquals(8, img.getColorModel().getComponentSize(0), p + " is 8-bit");
        return r.getSamples(0, 0, width, height, 0, new int[width * height]);
    }

    @Test
    void rsnaSliceMatchesTheWindowsPixelForPixel(@TempDir Path out) throws Exception {
        SampleCorpus.assumePresent();
        Path file = SampleCorpus.file("ID_000a2d7b0.dcm");
        CliTest.Run r = run("preview", file.toString(), "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals("", r.err());
        assertTrue(r.out().contains("ID_000a2d7b0_bsb.png"), r.out());

        float[] hu;
        int[] stored;
        Window header;
        try (DicomFile f = DicomFile.open(file)) {
            ImageHeader h = f.header();
            assertEquals(512, h.rows());
            assertEquals(512, h.columns());
            MemorySegment frame = f.pixelData().frame(0);
            hu = HounsfieldTransform.of(h, 0).apply(frame);
            StoredValues sv = StoredValues.of(h);
            stored = new int[hu.length];
            for (int i = 0; i < stored.length; i++) stored[i] = sv.get(frame, i);
            header = Window.linear("header", h.windowCenter()[0], h.windowWidth()[0]);
        }
        int min = Integer.MAX_VALUE, max = Integer.MIN_VALUE;
        for (int v : stored) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }

        for (String s : SUFFIXES) {
            BufferedImage img = read(out.resolve("ID_000a2d7b0_" + s + ".png"));
            assertEquals(512, img.getWidth(), s);
            assertEquals(512, img.getHeight(), s);
        }
        int[] raw = grey(out.resolve("ID_000a2d7b0_raw.png"), 512, 512);
        int[] window = grey(out.resolve("ID_000a2d7b0_window.png"), 512, 512);
        int[] brain = grey(out.resolve("ID_000a2d7b0_brain.png"), 512, 512);
        int[] subdural = grey(out.resolve("ID_000a2d7b0_subdural.png"), 512, 512);
        int[] soft = grey(out.resolve("ID_000a2d7b0_soft.png"), 512, 512);

        int inside = 0; // samples strictly inside the brain window: the check is not only of clamped 0s and 255s
        for (int i = 0; i < hu.length; i += 97) {
            assertEquals(round255(Window.BRAIN.apply(hu[i])), brain[i], "brain at " + i + ", HU " + hu[i]);
            assertEquals(round255(Window.SUBDURAL.apply(hu[i])), subdural[i], "subdural at " + i);
            assertEquals(round255(Window.SOFT_TISSUE.apply(hu[i])), soft[i], "soft at " + i);
            assertEquals(round255(header.apply(hu[i])), window[i], "header window at " + i);
            assertEquals(Math.round(255f * (float) ((stored[i] - (double) min) / (max - min))), raw[i], "raw at " + i);
            if (brain[i] > 0 && brain[i] < 255) inside++;
        }
        assertTrue(inside > 100, "only " + inside + " sampled pixels inside the brain window");
        assertEquals(0, java.util.Arrays.stream(raw).min().orElseThrow(), "min-max scaling: the lowest stored value is black");
        assertEquals(255, java.util.Arrays.stream(raw).max().orElseThrow(), "and the highest white");

        BufferedImage bsb = read(out.resolve("ID_000a2d7b0_bsb.png"));
        assertEquals(3, bsb.getColorModel().getNumComponents(), "RGB");
        assertFalse(bsb.getColorModel().hasAlpha());
        for (int y = 0; y < 512; y++) {
            for (int x = 0; x < 512; x++) {
                int rgb = bsb.getRGB(x, y), i = y * 512 + x;
                if (((rgb >> 16) & 0xFF) != brain[i] || ((rgb >> 8) & 0xFF) != subdural[i] || (rgb & 0xFF) != soft[i]) {
                    fail("bsb at " + x + "," + y + " is " + Integer.toHexString(rgb) + ", channels " + brain[i] + " " + subdural[i] + " " + soft[i]);
                }
            }
        }
    }

    @Test
    void aBadFileIsNamedAndTheOthersGoOn(@TempDir Path dir) throws Exception {
        Path junk = Files.writeString(dir.resolve("notes.txt"), "these are notes, not a DICOM file\n");
        Path good = new TinyDicom().write(dir.resolve("good.dcm"));
        Path missing = dir.resolve("missing.dcm");
        Path out = dir.resolve("out");
        CliTest.Run r = run("preview", junk.toString(), missing.toString(), good.toString(), "--out", out.toString());
        assertEquals(1, r.exit());
        String[] errors = r.err().strip().split("\n");
        assertEquals(2, errors.length, r.err());
        assertTrue(errors[0].startsWith("ich preview: " + junk), errors[0]);
        assertTrue(errors[1].startsWith("ich preview: " + missing) && errors[1].contains("NoSuchFile"), errors[1]);
        for (String s : SUFFIXES) assertEquals(4, read(out.resolve("good_" + s + ".png")).getWidth());
        assertFalse(Files.exists(out.resolve("notes.txt_raw.png")));
        assertTrue(r.out().startsWith(good + ":"), r.out());
    }

    @Test
    void monochrome1InvertsTheDisplayImagesButNotTheChannels(@TempDir Path dir) throws Exception {
        TinyDicom t = new TinyDicom();
        t.photometric = "MONOCHROME1";
        t.rows = 1;
        t.columns = 4;
        t.pixels(0, 1000, 1024, 1064); // HU -1024, -24, 0, 40 (intercept -1024)
        Path file = t.write(dir.resolve("m1.dcm"));
        Path out = dir.resolve("out");
        CliTest.Run r = run("preview", file.toString(), "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("MONOCHROME1"), r.out());
        assertArrayEquals(new int[]{255, 255 - round255(1000f / 1064), 255 - round255(1024f / 1064), 0}, grey(out.resolve("m1_raw.png"), 4, 1));
        assertArrayEquals(new int[]{255, 255, 255, 127}, grey(out.resolve("m1_window.png"), 4, 1), "40/80: 0 HU is 0, 40 HU is 0.5");
        assertArrayEquals(new int[]{0, 0, 0, 128}, grey(out.resolve("m1_brain.png"), 4, 1));
        assertArrayEquals(new int[]{0, round255(Window.SUBDURAL.apply(-24)), round255(Window.SUBDURAL.apply(0)), round255(Window.SUBDURAL.apply(40))},
                grey(out.resolve("m1_subdural.png"), 4, 1), "the model's float arithmetic: 0 HU is 0.099999994, so 25");
        assertEquals(25, round255(Window.SUBDURAL.apply(0)));
    }

    @Test
    void noHeaderWindowIsSaidAndSkipped(@TempDir Path dir) throws Exception {
        TinyDicom t = new TinyDicom();
        t.windowCenter = null;
        t.windowWidth = null;
        Path file = t.write(dir.resolve("nowin.dcm"));
        Path out = dir.resolve("out");
        CliTest.Run r = run("preview", file.toString(), "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("no Window Center/Width in the header: nowin_window.png not written"), r.out());
        assertFalse(Files.exists(out.resolve("nowin_window.png")));
        for (String s : List.of("raw", "brain", "subdural", "soft", "bsb")) assertTrue(Files.exists(out.resolve("nowin_" + s + ".png")), s);
    }

    @Test
    void multiFrameShowsFrameOne(@TempDir Path dir) throws Exception {
        TinyDicom t = new TinyDicom();
        t.rows = 1;
        t.columns = 2;
        t.frames = 2;
        t.pixels(1024, 1064, 1064, 1024); // frame 1: 0 and 40 HU; frame 2 the other way round
        Path file = t.write(dir.resolve("mf.dcm"));
        Path out = dir.resolve("out");
        CliTest.Run r = run("preview", file.toString(), "--out", out.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("frame 1 of 2"), r.out());
        assertArrayEquals(new int[]{0, 128}, grey(out.resolve("mf_brain.png"), 2, 1));
        assertArrayEquals(new int[]{0, 255}, grey(out.resolve("mf_raw.png"), 2, 1));
    }

    @Test
    void twoFilesOfTheSameNameDoNotOverwriteEachOther(@TempDir Path dir) throws Exception {
        Path a = new TinyDicom().write(dir.resolve("a/x.dcm"));
        Path b = new TinyDicom().write(dir.resolve("b/x.dcm"));
        CliTest.Run r = run("preview", a.toString(), b.toString(), "--out", dir.resolve("out").toString());
        assertEquals(1, r.exit());
        assertTrue(r.err().contains(b.toString()) && r.err().contains("would overwrite"), r.err());
        assertTrue(Files.exists(dir.resolve("out/x_raw.png")));
    }

    @Test
    void usage() {
        CliTest.Run r = run("preview", "x.dcm");
        assertEquals(2, r.exit());
        assertTrue(r.err().contains("--out"), r.err());
    }
}
