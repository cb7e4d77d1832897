package ich.train;

import ich.nn.Device;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Everything that determines a training run, and where it runs. Saved as {@code config.json} in the run folder and
 * inside every checkpoint; {@code --resume} refuses to continue a run under different settings, but not on another
 * device: checkpoints are the same files on either (see {@link #settingsJson()}).
 *
 * @param data          folder of DICOM files (searched recursively; {@code DATA/images} when it exists)
 * @param labels        the labels in stage_1_train.csv format
 * @param runDir        the run folder
 * @param schedule      phases, epochs and learning rates
 * @param batch         images per training step
 * @param resize        images are resized to resize x resize ...
 * @param crop          ... and cropped to crop x crop (randomly for training, the centre for validation)
 * @param groupedSplit  keep each patient's images on one side of the split (default); false: the seed's
 *                      ungrouped multilabel stratified split
 * @param valFraction   share of images held out for validation
 * @param pretrained    timm efficientnet_b0 weights in safetensors, or null to start from timm's initialisation
 * @param adamw         decoupled weight decay (AdamW) instead of Adam
 * @param weightDecay   L2 (Adam) or decoupled (AdamW) weight decay
 * @param adamEps       Adam's epsilon (Keras' 1e-7 by default, as the seed used)
 * @param clipNorm      global gradient-norm clipping, 0 for none
 * @param labelWeights  per-subtype loss weights, null for the plain mean BCE of the seed
 * @param dropout       dropout before the classifier (the seed's 0.125)
 * @param dropPath      timm's drop-path rate (0.2)
 * @param workers       loader threads (decode + preprocess)
 * @param threads       compute threads of the CPU backend
 * @param seed          the seed of everything random: split, initialisation, order, augmentation, dropout
 * @param priorHead     start the classifier at the training prevalence: bias logit(p) per subtype and timm's
 *                      weights scaled by 0.1, so the first steps are not spent unlearning random logits (a fresh
 *                      head's initial loss is ~1.3 instead of ~0.4); changes nothing the network can represent
 * @param device        where the network computes ({@code cpu} or {@code gpu:N})
 * @param gpuPreprocess on a GPU device, decode on the loader threads and let the preprocessing kernel write each
 *                      batch into device memory (the same tensors as the CPU path); false: the CPU loader's host
 *                      batches are copied to the device
 */
public record TrainConfig(Path data, Path labels, Path runDir, Schedule schedule, int batch, int resize, int crop,
                          boolean groupedSplit, double valFraction, Path pretrained, boolean adamw, double weightDecay,
                          double adamEps, double clipNorm, double[] labelWeights, double dropout, double dropPath,
                          int workers, int threads, long seed, boolean priorHead, Device device, boolean gpuPreprocess) {
    public TrainConfig {
        if (device == null) throw new IllegalArgumentException("no device");
        if (gpuPreprocess && !(device instanceof Device.Gpu)) {
            throw new IllegalArgumentException("GPU preprocessing needs a GPU device (--device gpu), not " + device.label());
        }
        if (batch <= 0) throw new IllegalArgumentException("--batch must be positive: " + batch);
        if (crop <= 0 || crop > resize) throw new IllegalArgumentException("need 0 < crop <= resize, got crop " + crop + ", resize " + resize);
        if (!(valFraction > 0 && valFraction < 1)) throw new IllegalArgumentException("validation fraction must be in (0, 1): " + valFraction);
        if (labelWeights != null && labelWeights.length != TrainingData.LABELS) {
            throw new IllegalArgumentException("need 6 label weights (any, epidural, intraparenchymal, intraventricular, subarachnoid, subdural), got " + labelWeights.length);
        }
        if (workers <= 0 || threads <= 0) throw new IllegalArgumentException("workers and threads must be positive");
    }

    /** On the CPU backend with {@code threads} threads. */
    public TrainConfig(Path data, Path labels, Path runDir, Schedule schedule, int batch, int resize, int crop,
                       boolean groupedSplit, double valFraction, Path pretrained, boolean adamw, double weightDecay,
                       double adamEps, double clipNorm, double[] labelWeights, double dropout, double dropPath,
                       int workers, int threads, long seed, boolean priorHead) {
        this(data, labels, runDir, schedule, batch, resize, crop, groupedSplit, valFraction, pretrained, adamw, weightDecay,
                adamEps, clipNorm, labelWeights, dropout, dropPath, workers, threads, seed, priorHead, new Device.Cpu(threads), false);
    }

    /** The same run on another device (GPU preprocessing on when it is a GPU). */
    public TrainConfig onDevice(Device d) {
        return new TrainConfig(data, labels, runDir, schedule, batch, resize, crop, groupedSplit, valFraction, pretrained, adamw,
                weightDecay, adamEps, clipNorm, labelWeights, dropout, dropPath, workers, threads, seed, priorHead, d,
                d instanceof Device.Gpu);
    }

    /** The same run with GPU preprocessing on or off. */
    public TrainConfig withGpuPreprocess(boolean on) {
        return new TrainConfig(data, labels, runDir, schedule, batch, resize, crop, groupedSplit, valFraction, pretrained, adamw,
                weightDecay, adamEps, clipNorm, labelWeights, dropout, dropPath, workers, threads, seed, priorHead, device, on);
    }

    /** Keys of {@link #toJson()} that say where a run computes, not what: a resumed run may change them. */
    static final String DEVICE_KEY = "device", PREPROCESS_KEY = "preprocess";

    /**
     * {@code config.json}: where the run computes ({@value #DEVICE_KEY}, {@value #PREPROCESS_KEY}: cpu or gpu),
     * then {@link #settingsJson()}.
     */
    public String toJson() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(DEVICE_KEY, device.label());
        m.put(PREPROCESS_KEY, gpuPreprocess ? "gpu" : "cpu");
        m.putAll(settings());
        return json(m);
    }

    /**
     * The settings that decide the numbers a run produces, as JSON: what {@code --resume} compares. Thread counts
     * are left out (the CPU backend gives the same result for any), and so is the device: the devices agree
     * within float precision and a checkpoint is the same file from either, so a run may resume on another one.
     */
    public String settingsJson() {
        return json(settings());
    }

    /**
     * {@link #settingsJson()} of a saved {@code config.json}: its device lines dropped. Runs from before the
     * device was recorded have none, and compare equal to a CPU run of the same settings.
     */
    static String settingsOf(String configJson) {
        return configJson.replaceAll("(?m)^  \"(" + DEVICE_KEY + "|" + PREPROCESS_KEY + ")\": \"[^\"\n]*\",\n", "");
    }

    /** The device a saved {@code config.json} names, or {@code cpu} for runs from before devices were recorded. */
    static String deviceOf(String configJson) {
        var m = java.util.regex.Pattern.compile("(?m)^  \"" + DEVICE_KEY + "\": \"([^\"\n]*)\",$").matcher(configJson);
        return m.find() ? m.group(1) : "cpu";
    }

    private Map<String, Object> settings() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("data", data.toString());
        m.put("labels", labels.toString());
        m.put("head_epochs", schedule.headEpochs());
        m.put("head_lr", schedule.headLr());
        m.put("full_epochs", schedule.fullEpochs());
        m.put("full_lr", schedule.fullLr());
        m.put("full_epoch_fraction", schedule.fullEpochFraction());
        m.put("cosine", schedule.cosine());
        m.put("batch", batch);
        m.put("resize", resize);
        m.put("crop", crop);
        m.put("split", groupedSplit ? "grouped" : "stratified");
        m.put("val_fraction", valFraction);
        m.put("pretrained", pretrained == null ? null : pretrained.toString());
        m.put("optimizer", adamw ? "adamw" : "adam");
        m.put("weight_decay", weightDecay);
        m.put("adam_eps", adamEps);
        m.put("clip_norm", clipNorm);
        m.put("label_weights", labelWeights);
        m.put("dropout", dropout);
        m.put("drop_path", dropPath);
        m.put("seed", seed);
        m.put("head_init", priorHead ? "prior" : "timm");
        return m;
    }

    private static String json(Map<String, Object> m) {
        StringBuilder sb = new StringBuilder("{\n");
        int i = 0;
        for (var e : m.entrySet()) {
            sb.append("  \"").append(e.getKey()).append("\": ").append(value(e.getValue()));
            sb.append(++i < m.size() ? ",\n" : "\n");
        }
        return sb.append("}\n").toString();
    }

    private static String value(Object v) {
        if (v == null) return "null";
        if (v instanceof String s) return '"' + s.replace("\\", "\\\\").replace("\"", "\\\"") + '"';
        if (v instanceof double[] a) {
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < a.length; i++) sb.append(i == 0 ? "" : ", ").append(value(a[i]));
            return sb.append(']').toString();
        }
        if (v instanceof Double d) return String.format(Locale.ROOT, "%s", d);
        return v.toString();
    }
}
