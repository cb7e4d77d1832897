package ich.dicom;

import org.junit.jupiter.api.Assumptions;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * DCMTK's command line tools as an independent check of the files we write. Tests that use them skip, printing
 * why, where DCMTK is not installed ({@code .ci/run} installs it when it can).
 */
public final class Dcmtk {
    private Dcmtk() {}

    public record Result(int exit, String out, String err) {}

    /** The tool on the PATH, or null. */
    public static Path find(String tool) {
        String path = System.getenv("PATH");
        if (path == null) return null;
        for (String dir : path.split(File.pathSeparator)) {
            if (dir.isEmpty()) continue;
            Path p = Path.of(dir, tool);
            if (Files.isRegularFile(p) && Files.isExecutable(p)) return p;
        }
        return null;
    }

    /** Skips the calling test, saying why (in the report and on the console), unless every tool is installed. */
    public static void assumeInstalled(String... tools) {
        for (String tool : tools) {
            if (find(tool) != null) continue;
            String why = "skipped: DCMTK's " + tool + " is not on the PATH (install the dcmtk package for the DCMTK cross-checks)";
            System.err.println(why);
            Assumptions.abort(why);
        }
    }

    /** Runs a tool to completion (at most a minute) and returns what it printed. */
    public static Result run(String tool, String... args) {
        List<String> command = new ArrayList<>();
        command.add(find(tool).toString());
        command.addAll(List.of(args));
        try {
            Path out = Files.createTempFile("dcmtk", ".out"), err = Files.createTempFile("dcmtk", ".err");
            try {
                Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
                if (!p.waitFor(60, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    throw new AssertionError(String.join(" ", command) + " did not finish within a minute");
                }
                return new Result(p.exitValue(), Files.readString(out, StandardCharsets.ISO_8859_1),
                        Files.readString(err, StandardCharsets.ISO_8859_1));
            } finally {
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    /**
     * The stored pixel values as DCMTK decodes them: {@code dcm2pnm} without the modality transform ({@code -M})
     * and without windowing writes an ASCII PGM of Bits Stored bits ({@code +opn}), where DCMTK maps the range of
     * stored values linearly onto the output, so a sample is {@code stored - minimum} (the minimum being
     * -2^(bits-1) for signed data, 0 for unsigned). Returned here with the minimum added back.
     */
    public static int[] storedValues(Path file, int bitsStored, boolean signed) {
        Result r = run("dcm2pnm", "-M", "+opn", Integer.toString(bitsStored), file.toString());
        if (r.exit() != 0) throw new AssertionError("dcm2pnm failed on " + file + " (exit " + r.exit() + "): " + r.err());
        String[] tokens = r.out().trim().split("\\s+");
        if (!tokens[0].equals("P2")) throw new AssertionError("dcm2pnm wrote no ASCII PGM: " + tokens[0]);
        int width = Integer.parseInt(tokens[1]), height = Integer.parseInt(tokens[2]);
        int maxval = Integer.parseInt(tokens[3]);
        if (maxval != (1 << bitsStored) - 1) throw new AssertionError("PGM maximum " + maxval + " for " + bitsStored + " bits");
        int offset = signed ? -(1 << (bitsStored - 1)) : 0;
        int[] values = new int[width * height];
        if (tokens.length != 4 + values.length) throw new AssertionError(tokens.length - 4 + " samples for " + width + " x " + height);
        for (int i = 0; i < values.length; i++) values[i] = Integer.parseInt(tokens[4 + i]) + offset;
        return values;
    }
}
