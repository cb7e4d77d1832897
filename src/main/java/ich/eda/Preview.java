package ich.eda;

import ich.dicom.DicomFile;
import ich.dicom.DicomFormatException;
import ich.dicom.FrameTransform;
import ich.dicom.ImageHeader;
import ich.dicom.PixelData;
import ich.dicom.StoredValues;
import ich.dicom.Tag;
import ich.hu.HounsfieldTransform;
import ich.preprocess.Window;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.awt.image.WritableRaster;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;

/**
 * PNG previews of one DICOM slice at its own size, as the seed notebook shows them:
 * <ul>
 *   <li>{@code <name>_raw.png}: the stored values, min-max scaled to 8-bit grey;</li>
 *   <li>{@code <name>_window.png}: the header window (first Window Center/Width) on HU; not written when the
 *       header has none;</li>
 *   <li>{@code <name>_brain.png}, {@code _subdural.png}, {@code _soft.png}: the BSB channels (brain 40/80,
 *       subdural 80/200, soft tissue 40/380) exactly as {@link Window#apply} computes them, on HU with the RSNA
 *       12-bit fix on;</li>
 *   <li>{@code <name>_bsb.png}: the three channels as 8-bit RGB, red = brain, green = subdural, blue = soft.</li>
 * </ul>
 * A channel value v in [0, 1] becomes the 8-bit value {@code round(255 v)} ({@link Math#round(float)}). Grey
 * PNGs are 8-bit grey, the composite 8-bit RGB. {@code <name>} is the file name without {@code .dcm}.
 * Multi-frame files show frame 1.
 *
 * <p>MONOCHROME1: its lowest value is meant to be displayed white (PS3.3 C.7.6.3.1.2). The display images,
 * raw and header window, are therefore inverted ({@code 255 - round(255 v)}) so that they look as a viewer
 * shows them. The BSB channels are not: they are the model's input, computed on HU, which are the same for
 * MONOCHROME1 and MONOCHROME2.
 */
public final class Preview {
    private Preview() {}

    public static final List<Window> BSB = List.of(Window.BRAIN, Window.SUBDURAL, Window.SOFT_TISSUE);

    /**
     * What was written for one file.
     *
     * @param files the PNGs, in the order raw, window (if any), brain, subdural, soft, bsb
     * @param notes what the user should know (no header window, MONOCHROME1 inverted, multi-frame)
     */
    public record Result(Path input, String name, List<Path> files, List<String> notes) {}

    /** The output name of a file: its name without a trailing {@code .dcm} (any case). */
    public static String name(Path file) { return HeaderScan.imageId(file); }

    /** The grey value of a channel value in [0, 1]: {@code round(255 v)}. */
    public static int grey(float v) { return Math.round(255f * v); }

    /**
     * Renders one file into {@code outDir}.
     *
     * @throws IOException for a file that cannot be read or shown (a {@link DicomFormatException} names it)
     */
    public static Result render(Path file, Path outDir) throws IOException {
        String name = name(file);
        String where = file.toString();
        try (DicomFile f = DicomFile.open(file)) {
            ImageHeader h = f.header();
            if (!h.hasPixelData()) throw new DicomFormatException(where, -1, Tag.PIXEL_DATA, "no Pixel Data to preview");
            if (h.samplesPerPixel() != 1) {
                throw new DicomFormatException(where, -1, Tag.SAMPLES_PER_PIXEL,
                        "preview needs grey images (1 sample per pixel), the image has " + h.samplesPerPixel());
            }
            if (h.bitsAllocated() == 1) throw new DicomFormatException(where, -1, Tag.BITS_ALLOCATED, "1-bit images have no preview");
            if ((long) h.rows() * h.columns() > Integer.MAX_VALUE - 8) {
                throw new DicomFormatException(where, -1, Tag.ROWS, "image too large to preview: " + h.rows() + " x " + h.columns());
            }
            PixelData px = f.pixelData();
            MemorySegment frame = px.frame(0);
            int rows = h.rows(), columns = h.columns(), n = rows * columns;
            HounsfieldTransform hu;
            try {
                hu = HounsfieldTransform.of(h, 0);
            } catch (IllegalArgumentException e) {
                throw new DicomFormatException(where, -1, Tag.NONE, e.getMessage());
            }
            boolean invert = hu.monochrome1();
            List<String> notes = new ArrayList<>();
            if (h.numberOfFrames() > 1) notes.add("frame 1 of " + h.numberOfFrames());
            if (invert) notes.add("MONOCHROME1: raw and window images inverted (bright = low values, as displayed)");
            if (hu.rsna12BitFix()) notes.add("RSNA 12-bit fix applied");

            StoredValues stored = StoredValues.of(h);
            int[] values = new int[n];
            int min = Integer.MAX_VALUE, max = Integer.MIN_VALUE;
            for (int i = 0; i < n; i++) {
                int v = stored.get(frame, i);
                values[i] = v;
                min = Math.min(min, v);
                max = Math.max(max, v);
            }
            float[] hus = hu.apply(frame);

            Files.createDirectories(outDir);
            List<Path> written = new ArrayList<>();
            byte[] raw = new byte[n];
            double range = (double) max - min;
            for (int i = 0; i < n; i++) {
                float v = range == 0 ? 0f : (float) ((values[i] - (double) min) / range);
                raw[i] = (byte) display(v, invert);
            }
            written.add(writeGrey(raw, columns, rows, outDir.resolve(name + "_raw.png")));

            FrameTransform t = h.frameTransform(0);
            if (t.windowCenter().length == 0 || t.windowWidth().length == 0) {
                notes.add("no Window Center/Width in the header: " + name + "_window.png not written");
            } else if (!(t.windowWidth()[0] > 0) || !Double.isFinite(t.windowWidth()[0]) || !Double.isFinite(t.windowCenter()[0])) {
                notes.add("header window " + t.windowCenter()[0] + "/" + t.windowWidth()[0] + " is not usable: " + name + "_window.png not written");
            } else {
                Window w = Window.linear("header", t.windowCenter()[0], t.windowWidth()[0]);
                byte[] win = new byte[n];
                for (int i = 0; i < n; i++) win[i] = (byte) display(w.apply(hus[i]), invert);
                written.add(writeGrey(win, columns, rows, outDir.resolve(name + "_window.png")));
                notes.add("header window " + EdaReport.num(w.center()) + "/" + EdaReport.num(w.width()));
            }

            byte[][] channels = new byte[BSB.size()][n];
            for (int c = 0; c < BSB.size(); c++) {
                Window w = BSB.get(c);
                byte[] ch = channels[c];
                for (int i = 0; i < n; i++) ch[i] = (byte) grey(w.apply(hus[i]));
                written.add(writeGrey(ch, columns, rows, outDir.resolve(name + "_" + w.name() + ".png")));
            }
            written.add(writeRgb(channels, columns, rows, outDir.resolve(name + "_bsb.png")));
            return new Result(file, name, List.copyOf(written), List.copyOf(notes));
        }
    }

    private static int display(float v, boolean invert) {
        int g = grey(v);
        return invert ? 255 - g : g;
    }

    private static Path writeGrey(byte[] pixels, int width, int height, Path file) throws IOException {
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_BYTE_GRAY);
        image.getRaster().setDataElements(0, 0, width, height, pixels);
        return write(image, file);
    }

    /** 8-bit RGB from three channels: red, green, blue. */
    private static Path writeRgb(byte[][] channels, int width, int height, Path file) throws IOException {
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_3BYTE_BGR);
        WritableRaster r = image.getRaster();
        int[] row = new int[width];
        for (int band = 0; band < 3; band++) {
            byte[] ch = channels[band];
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) row[x] = ch[y * width + x] & 0xFF;
                r.setSamples(0, y, width, 1, band, row);
            }
        }
        return write(image, file);
    }

    private static Path write(BufferedImage image, Path file) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            if (!ImageIO.write(image, "png", tmp.toFile())) throw new IOException("no PNG writer in this JDK");
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
        return file;
    }
}
