package ich.cli;

import ich.dicom.DicomFormatException;
import ich.eda.Preview;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "preview", mixinStandardHelpOptions = true,
        description = {"PNG previews of DICOM slices at their own size, into --out, per FILE (NAME = file name without .dcm):",
                "NAME_raw.png (stored values, min-max scaled), NAME_window.png (the header's first Window Center/Width on HU; "
                        + "skipped, with a note, when the header has none), NAME_brain.png (40/80), NAME_subdural.png (80/200), "
                        + "NAME_soft.png (40/380) and NAME_bsb.png (RGB: red brain, green subdural, blue soft).",
                "Grey values are round(255 v) of the window value v in [0, 1]; HU with the RSNA 12-bit fix on. MONOCHROME1 "
                        + "images have their raw and window images inverted, as displayed; the BSB channels are the model's input "
                        + "and are not. Multi-frame files: frame 1.",
                "A file that cannot be shown is reported and the others go on; the exit code is then 1."})
final class PreviewCommand implements Callable<Integer> {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Where the PNGs go (created).")
    Path out;

    @Parameters(arity = "1..*", paramLabel = "FILE")
    List<Path> files;

    @Override
    public Integer call() {
        Headless.ensure();
        PrintWriter stdout = spec.commandLine().getOut(), err = spec.commandLine().getErr();
        int failures = 0;
        Map<String, Path> names = new HashMap<>();
        for (Path file : files) {
            Path earlier = names.putIfAbsent(Preview.name(file), file);
            if (earlier != null) {
                failures++;
                err.println("ich preview: " + file + ": its previews would overwrite those of " + earlier + " (same name " + Preview.name(file) + ")");
                continue;
            }
            try {
                Preview.Result r = Preview.render(file, out);
                StringBuilder line = new StringBuilder(file.toString()).append(':');
                for (Path p : r.files()) line.append(' ').append(p.getFileName());
                if (!r.notes().isEmpty()) line.append(" (").append(String.join("; ", r.notes())).append(')');
                stdout.println(line);
            } catch (DicomFormatException e) {
                failures++;
                err.println("ich preview: " + e.getMessage());
            } catch (IOException | RuntimeException e) {
                failures++;
                err.println("ich preview: " + file + ": " + e);
            }
            stdout.flush();
            err.flush();
        }
        return failures == 0 ? 0 : 1;
    }
}
