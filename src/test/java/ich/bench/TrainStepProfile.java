package ich.bench;

import ich.nn.Tensor;
import ich.nn.cpu.CpuBackend;
import ich.nn.model.EfficientNetB0;
import ich.nn.model.StepContext;
import ich.nn.optim.Adam;

import java.lang.foreign.Arena;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Where a training step of B0 spends its time: runs steps (forward, BCE, backward, Adam) through a
 * {@link TimingBackend} and prints the share of each op class and the images/s. A diagnostic, not a benchmark
 * (EfficientNetBenchmark is that):
 * {@code java --add-modules jdk.incubator.vector -cp ... ich.bench.TrainStepProfile [size] [batch] [threads] [steps]}.
 */
public final class TrainStepProfile {
    public static void main(String[] args) {
        int size = args.length > 0 ? Integer.parseInt(args[0]) : 96;
        int batch = args.length > 1 ? Integer.parseInt(args[1]) : 32;
        int threads = args.length > 2 ? Integer.parseInt(args[2]) : 2;
        int steps = args.length > 3 ? Integer.parseInt(args[3]) : 6;
        int warmup = 2;
        try (CpuBackend cpu = new CpuBackend(threads);
             Arena arena = Arena.ofShared()) {
            TimingBackend timed = new TimingBackend(cpu);
            EfficientNetB0 timedModel = EfficientNetB0.initialized(timed, EfficientNetB0.Config.defaults(), 1);
            Adam adam = new Adam(timed, arena, Adam.Options.adam(1e-3));
            Tensor images = Tensor.allocate(arena, batch, 3, size, size);
            SplittableRandom r = new SplittableRandom(3);
            for (long i = 0; i < images.size(); i++) images.set(i, (float) r.nextGaussian());
            float[] targets = new float[batch * 6];
            for (int i = 0; i < targets.length; i++) targets[i] = r.nextInt(4) == 0 ? 1 : 0;
            long total = 0;
            for (int step = 0; step < warmup + steps; step++) {
                if (step == warmup) timed.reset();
                long t0 = System.nanoTime();
                StepContext ctx = StepContext.training(timed, 1, step);
                Tensor x = ctx.allocate(images.shape());
                timed.copy(images, x);
                Tensor logits = timedModel.forward(x, ctx);
                var loss = timedModel.loss(logits, ctx.upload(targets, batch, 6), null, ctx);
                timedModel.backward(loss.dLogits(), ctx);
                adam.step(timedModel.trainableParameters());
                long t1 = System.nanoTime();
                ctx.close();
                long t2 = System.nanoTime();
                timed.add("arena close", t2 - t1);
                if (step >= warmup) total += t2 - t0;
                System.out.printf(Locale.ROOT, "step %d: %.0f ms, loss %.4f%n", step, (t2 - t0) / 1e6, loss.value());
            }
            long accounted = 0;
            for (long[] v : timed.totals().values()) accounted += v[0];
            timed.add("(model code, not in ops)", total - accounted);
            System.out.printf(Locale.ROOT, "%s, B0 %dx%d batch %d: %.1f images/s (%.0f ms/step)%n", cpu.name(), size, size,
                    batch, (double) batch * steps / (total / 1e9), total / 1e6 / steps);
            long stepNanos = total;
            timed.totals().entrySet().stream()
                    .sorted((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0]))
                    .forEach(e -> System.out.printf(Locale.ROOT, "  %-26s %6.1f %%  %8.1f ms/step  %5d calls/step%n",
                            e.getKey(), 100.0 * e.getValue()[0] / stepNanos, e.getValue()[0] / 1e6 / steps, e.getValue()[1] / steps));
            timedModel.close();
        }
    }

    private TrainStepProfile() {
    }
}
