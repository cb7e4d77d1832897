package ich.cli;

import ich.gpu.Gpu;
import picocli.CommandLine.Command;

import java.io.PrintWriter;
import java.lang.management.ManagementFactory;

@Command(name = "info", mixinStandardHelpOptions = true, description = "Show the runtime: JDK, OS, cores, memory, GPU and NVIDIA libraries.")
final class InfoCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        PrintWriter out = spec.commandLine().getOut();
        Runtime rt = Runtime.getRuntime();
        long physical = -1;
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            physical = os.getTotalMemorySize();
        }
        out.printf("ich       %s%n", Main.version());
        out.printf("jdk       %s %s (%s)%n", System.getProperty("java.vm.name"), Runtime.version(), System.getProperty("java.home"));
        out.printf("os        %s %s %s%n", System.getProperty("os.name"), System.getProperty("os.version"), System.getProperty("os.arch"));
        out.printf("cores     %d%n", rt.availableProcessors());
        out.printf("memory    %s physical, %s max heap%n", physical < 0 ? "unknown" : gib(physical), gib(rt.maxMemory()));
        for (String line : Gpu.probe().lines()) out.println(line);
        out.flush();
    }

    private static String gib(long bytes) {
        return String.format("%.1f GiB", bytes / (double) (1L << 30));
    }
}
