package dev.capsule.runtime;

/** A sandbox was asked for from a template this driver does not have; the API answers 404 naming it. */
public final class UnknownTemplate extends RuntimeFailure {

    private final String templateId;

    public UnknownTemplate(String templateId, String message) {
        super(message);
        this.templateId = templateId;
    }

    public String templateId() {
        return templateId;
    }
}
