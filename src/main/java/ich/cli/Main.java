package ich.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

@Command(name = "ich", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Intracranial hemorrhage detection on head-CT DICOM slices.",
        subcommands = {InfoCommand.class, DicomCommand.class, LabelsCommand.class, SynthCommand.class, EdaCommand.class,
                PreviewCommand.class, EvaluateCommand.class, ModelCommand.class, TrainCommand.class, ScoreCommand.class,
                BenchCommand.class, ExportCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    public static CommandLine commandLine() {
        return new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true);
    }

    static String version() {
        try (InputStream in = Main.class.getResourceAsStream("/ich/version.properties")) {
            Properties p = new Properties();
            if (in != null) p.load(in);
            return p.getProperty("version", "unknown");
        } catch (IOException e) {
            return "unknown";
        }
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[]{"ich " + version(),
                    "JVM: " + System.getProperty("java.vm.name") + " " + Runtime.version()};
        }
    }
}
