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
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

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

    /**
     * JPEG 2000 under a watchdog. JJ2000 can loop forever on a corrupt codestream (reading packet headers past
     * their end, it takes the end-of-data value as an endless run of 1 bits), and a Java thread cannot be
     * stopped. So the decode runs on a daemon thread and the caller waits at most a time proportional to the
     * image; a decode that overruns is abandoned and reported as a corrupt codestream. After
     * {@link #MAX_RUNAWAY_DECODES} such runaways this JVM stops decoding JPEG 2000, so that hostile input can
     * cost a few cores at most, never the whole batch.
     */
    public static Image decodeJpeg2000(byte[] codestream, long samples) throws IOException {
        if (RUNAWAYS.get() >= MAX_RUNAWAY_DECODES) {
            throw new IOException("JPEG 2000 decoding is disabled in this process after " + MAX_RUNAWAY_DECODES
                    + " decodes of corrupt codestreams that never finished");
        }
        long limitMs = 10_000 + samples / 1_000; // 10 s plus 1 s per megasample: 100x what a real slice needs
        FutureTask<Image> task = new FutureTask<>(() -> decode(JPEG_2000, codestream, "JPEG 2000"));
        Thread t = Thread.ofPlatform().daemon().name("jpeg2000-decode").unstarted(task);
        t.setPriority(Thread.MIN_PRIORITY);
        t.start();
        try {
            return task.get(limitMs, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            RUNAWAYS.incrementAndGet();
            throw new IOException("JPEG 2000 decoder did not finish within " + limitMs / 1000 + " s: corrupt codestream (decode abandoned)");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) throw io;
            if (e.getCause() instanceof Error err) throw err;
            throw new IOException("JPEG 2000 decoder: " + e.getCause(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while decoding JPEG 2000", e);
        }
    }

    static final int MAX_RUNAWAY_DECODES = 4;
    private static final AtomicInteger RUNAWAYS = new AtomicInteger();

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
        } catch (RuntimeException | StackOverflowError e) {
            // Third-party decoders signal corrupt codestreams with unchecked exceptions; callers get an IOException.
            throw new IOException(what + " decoder failed on a corrupt codestream: " + e, e);
        } catch (Error e) {
            // JJ2000 throws java.lang.Error("Corrupted Bitstream: ...") for bad markers. Running out of memory
            // is not the file's fault and stays an error.
            if (e instanceof VirtualMachineError) throw e;
            throw new IOException(what + " decoder failed on a corrupt codestream: " + e, e);
        } finally {
            reader.dispose();
        }
    }
}
