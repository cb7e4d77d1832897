package ich.gpu;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Finds the NVIDIA shared libraries, trying in order: an environment override naming the file
 * ({@code ICH_LIBCUDA}, ...), the system loader by soname, the {@code lib64} and {@code lib} folders of
 * {@code CUDA_HOME} and {@code CUDA_PATH}, and the folders where pip puts the NVIDIA wheels
 * ({@code site-packages/nvidia/*}{@code /lib}, {@code tensorrt_libs}) in the Python environments of
 * {@code VIRTUAL_ENV}, {@code CONDA_PREFIX}, {@code ~/.local}, {@code /usr/local} and {@code /usr}.
 *
 * <p>Files are found by path without being loaded; only the system-loader step has to load a library to know
 * it is there. A failed search says everywhere it looked.
 */
public final class NativeLibraries {
    private NativeLibraries() {}

    /** A library: its override variable and its sonames, preferred first. */
    public record Library(String shortName, String envVar, List<String> sonames) {
        public Library {
            sonames = List.copyOf(sonames);
            if (sonames.isEmpty()) throw new IllegalArgumentException("no soname for " + shortName);
        }

        public String soname() {
            return sonames.getFirst();
        }
    }

    public static final Library CUDA = new Library("cuda", "ICH_LIBCUDA", List.of("libcuda.so.1"));
    public static final Library NVML = new Library("nvml", "ICH_LIBNVML", List.of("libnvidia-ml.so.1"));
    public static final Library CUDNN = new Library("cudnn", "ICH_LIBCUDNN", List.of("libcudnn.so.9"));
    public static final Library CUBLAS = new Library("cublas", "ICH_LIBCUBLAS", List.of("libcublas.so.13", "libcublas.so.12"));
    public static final Library TENSORRT = new Library("tensorrt", "ICH_LIBNVINFER", List.of("libnvinfer.so.10"));

    /** The outcome of a search. */
    public sealed interface Result permits Found, NotFound {
        Library library();
    }

    /**
     * @param file the library file, or null when the system loader found it by {@code soname}
     * @param how  how it was found, e.g. "ICH_LIBCUDA", "system loader", "CUDA_HOME", "Python site-packages"
     */
    public record Found(Library library, String soname, Path file, String how) implements Result {
        /** Where it is, for people: the file, or the soname the system loader resolved. */
        public String where() {
            return file != null ? file.toString() : soname + " (system loader)";
        }

        /** Loads it; it stays loaded until the arena closes. */
        public SymbolLookup load(Arena arena) {
            return file != null ? SymbolLookup.libraryLookup(file, arena) : SymbolLookup.libraryLookup(soname, arena);
        }
    }

    /** @param lookedAt every place tried, in order, for the message */
    public record NotFound(Library library, String reason, List<String> lookedAt) implements Result {
        public NotFound {
            lookedAt = List.copyOf(lookedAt);
        }

        /** E.g. {@code libcuda.so.1 not found (looked at ICH_LIBCUDA (unset), the system loader, ...)}. */
        public String message() {
            return reason + (lookedAt.isEmpty() ? "" : " (looked at " + String.join(", ", lookedAt) + ")");
        }
    }

    /**
     * Where to search: the environment, the home folder, the prefixes whose {@code lib/python3*} are scanned
     * after the environment's own, and whether to ask the system loader (which loads the library).
     */
    public record Search(Map<String, String> env, Path home, List<Path> systemPrefixes, boolean useSystemLoader) {
        public Search {
            env = Map.copyOf(env);
            systemPrefixes = List.copyOf(systemPrefixes);
        }

        /** This process's environment and the usual system prefixes. */
        public static Search ofSystem() {
            String home = System.getProperty("user.home");
            return new Search(System.getenv(), home == null ? null : Path.of(home),
                    List.of(Path.of("/usr/local"), Path.of("/usr")), true);
        }
    }

    /** Searches with this process's environment. */
    public static Result find(Library library) {
        return find(library, Search.ofSystem());
    }

    public static Result find(Library library, Search search) {
        Objects.requireNonNull(library);
        List<String> looked = new ArrayList<>();

        String override = search.env().get(library.envVar());
        if (override != null && !override.isBlank()) {
            Path file = Path.of(override);
            if (Files.isRegularFile(file)) return new Found(library, library.soname(), file, library.envVar());
            // An explicit choice that does not exist is an error, not a hint to look elsewhere.
            return new NotFound(library, library.soname() + " not found: " + library.envVar() + "=" + override
                    + (Files.exists(file) ? " is not a regular file" : " does not exist"), List.of());
        }
        looked.add(library.envVar() + " (unset)");

        if (search.useSystemLoader()) {
            for (String soname : library.sonames()) {
                if (systemLoaderHas(soname)) return new Found(library, soname, null, "system loader");
            }
            looked.add("the system loader (" + String.join(", ", library.sonames()) + ")");
        }

        for (String var : List.of("CUDA_HOME", "CUDA_PATH")) {
            String value = search.env().get(var);
            if (value == null || value.isBlank()) {
                looked.add(var + " (unset)");
                continue;
            }
            for (String sub : List.of("lib64", "lib")) {
                Path dir = Path.of(value).resolve(sub);
                Path file = firstFile(dir, library);
                if (file != null) return new Found(library, file.getFileName().toString(), file, var);
                looked.add(dir.toString());
            }
        }

        List<Path> dirs = pythonLibraryDirs(search);
        for (Path dir : dirs) {
            Path file = firstFile(dir, library);
            if (file != null) return new Found(library, file.getFileName().toString(), file, "Python site-packages");
        }
        looked.add(dirs.isEmpty()
                ? "Python site-packages (none with NVIDIA wheels)"
                : "Python NVIDIA wheel folders " + dirs);
        return new NotFound(library, library.soname() + " not found", looked);
    }

    private static boolean systemLoaderHas(String soname) {
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup.libraryLookup(soname, arena);
            return true;
        } catch (IllegalArgumentException | IllegalCallerException e) {
            return false;
        }
    }

    private static Path firstFile(Path dir, Library library) {
        for (String soname : library.sonames()) {
            Path file = dir.resolve(soname);
            if (Files.isRegularFile(file)) return file;
        }
        return null;
    }

    /** The {@code nvidia/*}{@code /lib} and {@code tensorrt_libs} folders of every Python environment found. */
    static List<Path> pythonLibraryDirs(Search search) {
        List<Path> prefixes = new ArrayList<>();
        for (String var : List.of("VIRTUAL_ENV", "CONDA_PREFIX")) {
            String value = search.env().get(var);
            if (value != null && !value.isBlank()) prefixes.add(Path.of(value));
        }
        if (search.home() != null) prefixes.add(search.home().resolve(".local"));
        prefixes.addAll(search.systemPrefixes());

        List<Path> dirs = new ArrayList<>();
        for (Path prefix : prefixes) {
            for (Path python : children(prefix.resolve("lib"), "python3*")) {
                for (String packages : List.of("site-packages", "dist-packages")) {
                    Path site = python.resolve(packages);
                    for (Path wheel : children(site.resolve("nvidia"), "*")) {
                        if (Files.isDirectory(wheel.resolve("lib"))) dirs.add(wheel.resolve("lib"));
                    }
                    if (Files.isDirectory(site.resolve("tensorrt_libs"))) dirs.add(site.resolve("tensorrt_libs"));
                }
            }
        }
        return dirs;
    }

    private static List<Path> children(Path dir, String glob) {
        if (!Files.isDirectory(dir)) return List.of();
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> stream = Files.newDirectoryStream(dir, glob)) {
            for (Path p : stream) if (Files.isDirectory(p)) out.add(p);
        } catch (IOException e) {
            return out; // an unreadable folder holds nothing we can use
        }
        out.sort(null);
        return out;
    }
}
