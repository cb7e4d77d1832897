package ich.gpu;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.zip.ZipFile;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The build's CUDA step (scripts/build-kernels): where nvcc is installed, the preprocessing fatbin must be on
 * the class path with SASS for sm_80 and sm_90 and PTX for compute_90, and in the shaded jar. Skips, saying
 * why, without nvcc. Nothing here runs a kernel: that needs a GPU.
 */
class KernelBuildTest {
    private static Optional<Path> nvcc;

    @BeforeAll
    static void findNvcc() {
        nvcc = findNvccAsTheBuildDoes();
    }

    /** Same order as scripts/build-kernels: $CUDA_HOME/bin, the PATH, /usr/local/cuda/bin. */
    static Optional<Path> findNvccAsTheBuildDoes() {
        List<Path> candidates = new ArrayList<>();
        String home = System.getenv("CUDA_HOME");
        if (home != null && !home.isEmpty()) candidates.add(Paths.get(home, "bin", "nvcc"));
        String path = System.getenv("PATH");
        if (path != null) {
            for (String dir : path.split(File.pathSeparator)) if (!dir.isEmpty()) candidates.add(Paths.get(dir, "nvcc"));
        }
        candidates.add(Paths.get("/usr/local/cuda/bin/nvcc"));
        return candidates.stream().filter(p -> Files.isRegularFile(p) && Files.isExecutable(p)).findFirst();
    }

    private static Optional<Path> onPath(String tool) {
        String path = System.getenv("PATH");
        if (path == null) return Optional.empty();
        for (String dir : path.split(File.pathSeparator)) {
            Path p = dir.isEmpty() ? null : Paths.get(dir, tool);
            if (p != null && Files.isRegularFile(p) && Files.isExecutable(p)) return Optional.of(p);
        }
        return Optional.empty();
    }

    /** cuobjdump beside nvcc (the link's target too, when nvcc is a link) or on the PATH. */
    private static Optional<Path> cuobjdump() throws IOException {
        for (Path p : List.of(nvcc.get().resolveSibling("cuobjdump"), nvcc.get().toRealPath().resolveSibling("cuobjdump"))) {
            if (Files.isRegularFile(p) && Files.isExecutable(p)) return Optional.of(p);
        }
        return onPath("cuobjdump");
    }

    private static byte[] fatbin() {
        assumeTrue(nvcc.isPresent(), "nvcc not found (CUDA_HOME, PATH, /usr/local/cuda): GPU kernels not built, nothing to check");
        assumeFalse(Boolean.getBoolean("ich.kernels.skip"), "kernels skipped by -Dich.kernels.skip=true");
        assumeTrue(onPath("cmake").isPresent(), "cmake not on the PATH: GPU kernels not built, nothing to check");
        Optional<byte[]> bytes = Kernels.preprocessFatbin();
        assertTrue(bytes.isPresent(), "nvcc is " + nvcc.get() + " but " + Kernels.PREPROCESS_FATBIN + " is not on the class path");
        return bytes.get();
    }

    /** One fatbin entry: kind 1 = PTX, 2 = ELF (SASS); arch 80 = sm_80 / compute_80. */
    record Entry(int kind, int arch) {}

    /**
     * The entries of a fatbin: a 16-byte header (magic, version u16, header size u16, payload size u64), then
     * entries, each a header (kind u16, version u16, header size u32, payload size u64, ..., arch u32 at 28)
     * followed by its payload.
     */
    static List<Entry> entries(byte[] fatbin) {
        ByteBuffer b = ByteBuffer.wrap(fatbin).order(ByteOrder.LITTLE_ENDIAN);
        int headerSize = Short.toUnsignedInt(b.getShort(6));
        long end = headerSize + b.getLong(8);
        assertTrue(end <= fatbin.length, "fatbin payload size " + end + " exceeds the file's " + fatbin.length + " bytes");
        List<Entry> out = new ArrayList<>();
        long at = headerSize;
        while (at + 32 <= end) {
            int p = Math.toIntExact(at);
            int kind = Short.toUnsignedInt(b.getShort(p));
            long entryHeader = Integer.toUnsignedLong(b.getInt(p + 4));
            long payload = b.getLong(p + 8);
            out.add(new Entry(kind, b.getInt(p + 28)));
            assertTrue(entryHeader >= 32 && payload >= 0, "bad fatbin entry header at byte " + at);
            at += entryHeader + payload;
        }
        assertEquals(end, at, "fatbin entries do not add up to the declared size");
        return out;
    }

    @Test
    void fatbinIsOnTheClassPathWithTheMagic() {
        byte[] f = fatbin();
        assertTrue(f.length > 16, "fatbin of " + f.length + " bytes");
        int magic = ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN).getInt(0);
        assertEquals(Kernels.FATBIN_MAGIC, magic, () -> "fatbin magic " + Integer.toHexString(magic));
    }

    @Test
    void fatbinHoldsSm80AndSm90CodeAndCompute90Ptx() throws Exception {
        byte[] f = fatbin();
        List<Entry> entries = entries(f);
        assertTrue(entries.contains(new Entry(2, 80)), "no sm_80 SASS in " + entries);
        assertTrue(entries.contains(new Entry(2, 90)), "no sm_90 SASS in " + entries);
        assertTrue(entries.contains(new Entry(1, 90)), "no compute_90 PTX in " + entries);
        // Entry point names are in the ELF symbol tables uncompressed.
        String text = new String(f, StandardCharsets.ISO_8859_1);
        for (String name : List.of(Kernels.PREPROCESS_F32_NCHW, Kernels.PREPROCESS_F32_NHWC, Kernels.PREPROCESS_F16_NCHW,
                Kernels.PREPROCESS_F16_NHWC, Kernels.PREPROCESS_BF16_NCHW, Kernels.PREPROCESS_BF16_NHWC)) {
            assertTrue(text.contains(name), "no entry point " + name + " in the fatbin");
            assertTrue(text.contains(name + "_linear"), "no entry point " + name + "_linear in the fatbin");
        }

        // cross-check with the CUDA toolkit's own reader where it is installed
        Optional<Path> found = cuobjdump();
        if (found.isEmpty()) {
            System.out.println("KernelBuildTest: no cuobjdump beside nvcc or on the PATH; checked the fatbin headers only");
            return;
        }
        Path cuobjdump = found.get();
        Path tmp = Files.createTempFile("preprocess", ".fatbin");
        try {
            Files.write(tmp, f);
            Process p = new ProcessBuilder(cuobjdump.toString(), "--list-elf", tmp.toString()).redirectErrorStream(true).start();
            String listing = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "cuobjdump did not finish");
            assertEquals(0, p.exitValue(), listing);
            assertTrue(listing.contains("sm_80") && listing.contains("sm_90"), listing);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /**
     * The training kernels (cuda/nn.cu): nn.fatbin is built into target/classes beside the preprocessing one, with
     * the same targets, and every entry point {@link NnKernels} launches is declared {@code extern "C"} in the source
     * and has its code section ({@code .text.<name>}, NUL-terminated, so a name that is a prefix of another does
     * not pass by accident) in the fatbin's ELF images.
     */
    @Test
    void nnFatbinIsBuiltWithEveryEntryPointTheJavaSideLaunches() throws IOException {
        fatbin(); // the same skips: no nvcc, kernels skipped, no cmake
        Path built = Paths.get("target", "classes").resolve(Kernels.NN_FATBIN.substring(1));
        assertTrue(Files.isRegularFile(built), "nvcc is " + nvcc.get() + " but " + built + " was not built");
        byte[] f = Kernels.nnFatbin().orElseThrow(() -> new AssertionError(Kernels.NN_FATBIN + " is not on the class path"));
        assertEquals(Kernels.FATBIN_MAGIC, ByteBuffer.wrap(f).order(ByteOrder.LITTLE_ENDIAN).getInt(0), "nn.fatbin magic");
        List<Entry> entries = entries(f);
        assertTrue(entries.contains(new Entry(2, 80)) && entries.contains(new Entry(2, 90)) && entries.contains(new Entry(1, 90)),
                "nn.fatbin lacks sm_80 / sm_90 SASS or compute_90 PTX: " + entries);

        String text = new String(f, StandardCharsets.ISO_8859_1);
        String source = Files.readString(Paths.get("cuda", "nn.cu"));
        // a kernel may carry launch bounds between its return type and its name
        String bounds = "(?:__launch_bounds__\\([^)]*\\) )?";
        for (String name : NnKernels.ENTRY_POINTS) {
            assertTrue(java.util.regex.Pattern.compile("extern \"C\" __global__ void " + bounds + name + "\\(").matcher(source).find(),
                    "cuda/nn.cu does not define " + name);
            assertTrue(text.contains(".text." + name + "\0"), "no code for " + name + " in nn.fatbin");
        }
        assertEquals(NnKernels.ENTRY_POINTS.size(), NnKernels.ENTRY_POINTS.stream().distinct().count(), "duplicate entry points");
        // every kernel in the source is one the Java side knows, so none is compiled and forgotten
        var defined = java.util.regex.Pattern.compile("__global__ void " + bounds + "(ich_nn_\\w+)\\(").matcher(source).results()
                .map(r -> r.group(1)).sorted().toList();
        assertEquals(NnKernels.ENTRY_POINTS.stream().sorted().toList(), defined, "kernels in cuda/nn.cu vs NnKernels.ENTRY_POINTS");
    }

    @Test
    void shadedJarCarriesTheFatbin() throws IOException {
        fatbin();
        Path jar = Paths.get("target", "ich.jar");
        assumeTrue(Files.isRegularFile(jar), "target/ich.jar not built yet (tests run before packaging)");
        Path built = Paths.get("target", "classes").resolve(Kernels.PREPROCESS_FATBIN.substring(1));
        assumeTrue(!Files.exists(built) || !Files.getLastModifiedTime(jar).toInstant().isBefore(Files.getLastModifiedTime(built).toInstant()),
                "target/ich.jar is older than the fatbin: it is from an earlier build");
        try (ZipFile zip = new ZipFile(jar.toFile())) {
            var entry = zip.getEntry(Kernels.PREPROCESS_FATBIN.substring(1));
            assertNotNull(entry, "target/ich.jar has no " + Kernels.PREPROCESS_FATBIN);
            try (var in = zip.getInputStream(entry)) {
                assertTrue(java.util.Arrays.equals(Kernels.preprocessFatbin().orElseThrow(), in.readAllBytes()), "the jar's fatbin differs from the class path's");
            }
        }
    }
}
