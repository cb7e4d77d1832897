package ich.gpu;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The locator on fake trees: files are found by path and never loaded (the dummies are not libraries). */
class NativeLibrariesTest {
    @TempDir
    Path dir;

    private static Path dummy(Path file) throws IOException {
        Files.createDirectories(file.getParent());
        return Files.writeString(file, "not a shared library");
    }

    private NativeLibraries.Search search(Map<String, String> env) {
        return new NativeLibraries.Search(env, dir.resolve("home"), List.of(dir.resolve("usr")), false);
    }

    @Test
    void findsCudnnInAVirtualEnvironmentsSitePackages() throws IOException {
        Path venv = dir.resolve("venv");
        Path lib = dummy(venv.resolve("lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9"));
        NativeLibraries.Result r = NativeLibraries.find(NativeLibraries.CUDNN, search(Map.of("VIRTUAL_ENV", venv.toString())));
        NativeLibraries.Found f = assertInstanceOf(NativeLibraries.Found.class, r);
        assertEquals(lib, f.file());
        assertEquals("Python site-packages", f.how());
        assertEquals(lib.toString(), f.where());
    }

    @Test
    void findsTheOlderCublasSonameUnderDotLocalAndTensorRtInItsWheel() throws IOException {
        Path cublas = dummy(dir.resolve("home/.local/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12"));
        Path nvinfer = dummy(dir.resolve("usr/lib/python3.10/dist-packages/tensorrt_libs/libnvinfer.so.10"));
        NativeLibraries.Search s = search(Map.of());
        assertEquals(cublas, ((NativeLibraries.Found) NativeLibraries.find(NativeLibraries.CUBLAS, s)).file());
        assertEquals(nvinfer, ((NativeLibraries.Found) NativeLibraries.find(NativeLibraries.TENSORRT, s)).file());
    }

    @Test
    void findsTheNewestCublasFirstAndCudaHomeBeforePython() throws IOException {
        Path cuda = dir.resolve("cuda");
        Path v13 = dummy(cuda.resolve("lib64/libcublas.so.13"));
        dummy(cuda.resolve("lib64/libcublas.so.12"));
        Path venv = dir.resolve("venv");
        dummy(venv.resolve("lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.13"));
        NativeLibraries.Result r = NativeLibraries.find(NativeLibraries.CUBLAS,
                search(Map.of("CUDA_HOME", cuda.toString(), "VIRTUAL_ENV", venv.toString())));
        NativeLibraries.Found f = assertInstanceOf(NativeLibraries.Found.class, r);
        assertEquals(v13, f.file());
        assertEquals("CUDA_HOME", f.how());
        assertEquals("libcublas.so.13", f.soname());
    }

    @Test
    void theEnvironmentOverrideWins() throws IOException {
        Path mine = dummy(dir.resolve("custom/libcuda.so.1"));
        Path conda = dir.resolve("conda");
        dummy(conda.resolve("lib/python3.12/site-packages/nvidia/cuda/lib/libcuda.so.1"));
        NativeLibraries.Result r = NativeLibraries.find(NativeLibraries.CUDA,
                search(Map.of("ICH_LIBCUDA", mine.toString(), "CONDA_PREFIX", conda.toString())));
        NativeLibraries.Found f = assertInstanceOf(NativeLibraries.Found.class, r);
        assertEquals(mine, f.file());
        assertEquals("ICH_LIBCUDA", f.how());
    }

    @Test
    void anOverrideToAMissingFileIsAClearErrorNotAFallback() throws IOException {
        Path missing = dir.resolve("nowhere/libcuda.so.1");
        Path venv = dir.resolve("venv");
        dummy(venv.resolve("lib/python3.12/site-packages/nvidia/cuda/lib/libcuda.so.1"));
        NativeLibraries.Result r = NativeLibraries.find(NativeLibraries.CUDA,
                search(Map.of("ICH_LIBCUDA", missing.toString(), "VIRTUAL_ENV", venv.toString())));
        NativeLibraries.NotFound n = assertInstanceOf(NativeLibraries.NotFound.class, r);
        assertEquals("libcuda.so.1 not found: ICH_LIBCUDA=" + missing + " does not exist", n.message());
    }

    @Test
    void anOverrideToAFolderIsRefused() {
        NativeLibraries.Result r = NativeLibraries.find(NativeLibraries.NVML, search(Map.of("ICH_LIBNVML", dir.toString())));
        NativeLibraries.NotFound n = assertInstanceOf(NativeLibraries.NotFound.class, r);
        assertTrue(n.message().contains("ICH_LIBNVML=" + dir + " is not a regular file"), n.message());
    }

    @Test
    void aFailedSearchSaysWhereItLooked() throws IOException {
        Path cuda = dir.resolve("cuda");
        Files.createDirectories(cuda.resolve("lib64"));
        Path venv = dir.resolve("venv");
        Path wheel = Files.createDirectories(venv.resolve("lib/python3.12/site-packages/nvidia/cublas/lib"));
        NativeLibraries.Result r = NativeLibraries.find(NativeLibraries.CUDNN,
                search(Map.of("CUDA_PATH", cuda.toString(), "VIRTUAL_ENV", venv.toString())));
        String m = assertInstanceOf(NativeLibraries.NotFound.class, r).message();
        assertTrue(m.startsWith("libcudnn.so.9 not found (looked at ICH_LIBCUDNN (unset), CUDA_HOME (unset), "), m);
        assertTrue(m.contains(cuda.resolve("lib64").toString()) && m.contains(cuda.resolve("lib").toString()), m);
        assertTrue(m.contains("Python NVIDIA wheel folders [" + wheel + "]"), m);
    }

    @Test
    void withoutAnyPythonEnvironmentTheMessageSaysSo() {
        NativeLibraries.Result r = NativeLibraries.find(NativeLibraries.CUDA, search(Map.of()));
        String m = assertInstanceOf(NativeLibraries.NotFound.class, r).message();
        assertTrue(m.endsWith("Python site-packages (none with NVIDIA wheels))"), m);
    }
}
