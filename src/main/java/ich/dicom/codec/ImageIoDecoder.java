package ich.dicom.codec;

import com.github.jaiimageio.jpeg2000.impl.J2KImageReaderSpi;
import com.twelvemonkeys.imageio.plugins.jpeg.JPEGImageReaderSpi;

import javax.imageio.ImageReadParam;
import javax.imageio.ImageReader;
import javax.imageio.spi.IIORegistry;
import javax.imageio.spi.ImageReaderSpi;
import javax.imageio.stream.MemoryCacheImageInputStream;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;

/**
 * Codecs from maintained libraries, called through ImageIO with a fixed reader (never whatever plug-in
 * happens to be registered): TwelveMonkeys for JPEG Lossless (process 14) and 8-bit colour JPEG,
 * jai-imageio for JPEG 2000.
 */
public final class ImageIoDecoder {
    /** Decoded samples, row-major, components interleaved, as the raster's signed or unsigned ints. */
    public record Image(int width, int height, int components, int[] samples) {}

    private static final ImageReaderSpi JPEG = provider(JPEGImageReaderSpi.class);
    private static final ImageReaderSpi JPEG_2000 = provider(J2KImageReaderSpi.class);

    /**
     * The registered instance: TwelveMonkeys' reader finds the JDK reader it delegates baseline JPEG to
     * when the registry registers it, so a bare {@code new} would be incomplete.
     */
    private static ImageReaderSpi provider(Class<? extends ImageReaderSpi> type) {
        ImageReaderSpi spi = IIORegistry.getDefaultInstance().getServiceProviderByClass(type);
        if (spi == null) throw new IllegalStateException(type.getName() + " is not registered: its jar is missing from the class path");
        return spi;
    }

    private ImageIoDecoder() {}

    public static Image decodeJpeg(byte[] codestream) throws IOException { return decode(JPEG, codestream, "JPEG"); }

    public static Image decodeJpeg2000(byte[] codestream) throws IOException { return decode(JPEG_2000, codestream, "JPEG 2000"); }

    private static Image decode(ImageReaderSpi spi, byte[] codestream, String what) throws IOException {
        ImageReader reader = spi.createReaderInstance();
        try (MemoryCacheImageInputStream in = new MemoryCacheImageInputStream(new ByteArrayInputStream(codestream))) {
            reader.setInput(in, true, true);
            ImageReadParam param = reader.getDefaultReadParam();
            Raster raster = reader.read(0, param).getRaster();
            int w = raster.getWidth(), h = raster.getHeight(), c = raster.getNumBands();
            return new Image(w, h, c, raster.getPixels(raster.getMinX(), raster.getMinY(), w, h, (int[]) null));
        } catch (IOException e) {
            throw new IOException(what + " decoder: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            // Third-party decoders signal corrupt codestreams with unchecked exceptions; callers get an IOException.
            throw new IOException(what + " decoder failed on a corrupt codestream: " + e, e);
        } finally {
            reader.dispose();
        }
    }
}
